"""Writes 300,000 random uint16 ids of the Llama vocabulary (seed 0) to argv[1]: benchmark data
where the shape, not the text, matters (bench/parallel_bench.sh, bench/sp_bench.sh)."""
import array
import random
import sys

random.seed(0)
a = array.array('H', (random.randrange(32000) for _ in range(300000)))
open(sys.argv[1], 'wb').write(a.tobytes())
