"""Reference side of bench/tokenize_bench: Python sentencepiece (Debian python3-sentencepiece)
encoding the same documents with its fastest batch API, encode(list, num_threads=N).
Run by tokenize_bench with /usr/bin/python3; prints one JSON line:
{"seconds": best wall time, "tokens": n, "checksum": c} where the checksum folds all ids in order
exactly as tokenize_bench does, so the two tokenizations are compared id for id."""
import json
import sys
import time

import sentencepiece as spm

model, threads, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
docs = []
for path in sys.argv[4:]:
    with open(path, encoding="utf-8") as f:
        docs.extend(line.rstrip("\n") for line in f if line.strip())

best = None
for _ in range(reps):
    sp = spm.SentencePieceProcessor(model_file=model)
    t = time.perf_counter()
    out = sp.encode(docs, out_type=int, num_threads=threads)
    dt = time.perf_counter() - t
    best = dt if best is None else min(best, dt)

checksum, tokens = 0, 0
mask = (1 << 64) - 1
for ids in out:
    for i in ids:
        checksum = (checksum * 1000003 + i + 1) & mask
    tokens += len(ids)
print(json.dumps({"seconds": best, "tokens": tokens, "checksum": checksum}))
