#include "ckpt/s3_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"

namespace lt {

namespace fs = std::filesystem;

std::string sha256_hex(const void* data, size_t size) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(static_cast<const unsigned char*>(data), size, d);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : d) out += hex[b >> 4], out += hex[b & 15];
  return out;
}

std::string s3_uri_encode(const std::string& s, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/'))
      out += char(c);
    else
      out += '%', out += hex[c >> 4], out += hex[c & 15];
  }
  return out;
}

namespace {

// --- the few XML fields S3 answers with ---------------------------------------------------

std::string xml_unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string::npos) fail("malformed XML entity in S3 response");
    std::string ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else if (!ent.empty() && ent[0] == '#') {
      unsigned long cp = ent.size() > 1 && ent[1] == 'x' ? std::stoul(ent.substr(2), nullptr, 16)
                                                         : std::stoul(ent.substr(1));
      // UTF-8 encode the code point.
      if (cp < 0x80) out += char(cp);
      else if (cp < 0x800) out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 63));
      else if (cp < 0x10000)
        out += char(0xE0 | (cp >> 12)), out += char(0x80 | ((cp >> 6) & 63)), out += char(0x80 | (cp & 63));
      else
        out += char(0xF0 | (cp >> 18)), out += char(0x80 | ((cp >> 12) & 63)),
            out += char(0x80 | ((cp >> 6) & 63)), out += char(0x80 | (cp & 63));
    } else {
      fail("unknown XML entity &{}; in S3 response", ent);
    }
    i = semi;
  }
  return out;
}

// The raw inner text of every <tag>...</tag> in `xml` (S3 responses have no attributes on
// the elements we read, and no CDATA).
std::vector<std::string> xml_all(const std::string& xml, const std::string& tag) {
  std::vector<std::string> out;
  std::string open = "<" + tag + ">", close = "</" + tag + ">";
  for (size_t pos = 0;;) {
    size_t b = xml.find(open, pos);
    if (b == std::string::npos) break;
    size_t e = xml.find(close, b + open.size());
    if (e == std::string::npos) break;
    out.push_back(xml.substr(b + open.size(), e - b - open.size()));
    pos = e + close.size();
  }
  return out;
}

std::string xml_first(const std::string& xml, const std::string& tag) {
  auto all = xml_all(xml, tag);
  return all.empty() ? std::string() : xml_unescape(all[0]);
}

// --- curl plumbing -----------------------------------------------------------------------

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) fail("libcurl initialisation failed");
  });
}

bool retryable_curl_error(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_CONNECT: case CURLE_COULDNT_RESOLVE_HOST: case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR: case CURLE_RECV_ERROR: case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

struct Body {
  const char* data = nullptr;
  size_t size = 0, pos = 0;
};

// CURLOPT_XFERINFOFUNCTION: a non-zero return aborts the transfer (CURLE_ABORTED_BY_CALLBACK).
int cancel_check(void* flag, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* f = static_cast<const std::atomic<bool>*>(flag);
  return f && f->load() ? 1 : 0;
}

size_t read_body(char* out, size_t size, size_t n, void* user) {
  auto* b = static_cast<Body*>(user);
  size_t take = std::min(size * n, b->size - b->pos);
  std::memcpy(out, b->data + b->pos, take);
  b->pos += take;
  return take;
}

}  // namespace

struct S3Store::Request {
  std::string method;           // GET PUT POST DELETE HEAD
  std::string key;              // object key; empty for bucket-level requests
  std::string query;            // canonical: sorted, encoded, "k=v&k2=v2"
  const char* body = nullptr;   // request body (PUT/POST)
  size_t body_size = 0;
  int download_fd = -1;         // GET: stream the body into this file instead of memory
};

struct S3Store::Response {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

namespace {

struct Sink {
  S3Store::Response* resp;
  int fd;
  bool write_failed = false;
};

size_t write_body(char* p, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  size_t len = size * n;
  // Error bodies (XML) always go to memory so they can be reported.
  if (s->fd < 0 || s->resp->status == 0 || s->resp->status >= 300) {
    s->resp->body.append(p, len);
    return len;
  }
  for (size_t off = 0; off < len;) {
    ssize_t w = ::write(s->fd, p + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      s->write_failed = true;
      return 0;
    }
    off += size_t(w);
  }
  return len;
}

size_t write_header(char* p, size_t size, size_t n, void* user) {
  auto* r = static_cast<S3Store::Response*>(user);
  std::string line(p, size * n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new status line (e.g. after 100 Continue)
    r->headers.clear();
    size_t sp = line.find(' ');
    r->status = sp == std::string::npos ? 0 : std::atol(line.c_str() + sp + 1);
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (auto& ch : name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    size_t b = line.find_first_not_of(" \t", colon + 1), e = line.find_last_not_of(" \t\r\n");
    r->headers[name] = b == std::string::npos || e < b ? "" : line.substr(b, e - b + 1);
  }
  return size * n;
}

}  // namespace

S3Store::S3Store(std::string bucket, S3Config config) : bucket_(std::move(bucket)), cfg_(std::move(config)) {
  curl_init_once();
  LT_CHECK(!bucket_.empty(), "S3 bucket name is empty");
  LT_CHECK(!cfg_.access_key_id.empty() && !cfg_.secret_access_key.empty(),
           "S3 credentials are missing for bucket '{}'", bucket_);
  LT_CHECK(cfg_.part_size >= (5ull << 20), "S3 part size {} is below S3's minimum of 5 MiB",
           cfg_.part_size);
  LT_CHECK(cfg_.max_attempts >= 1, "S3 max_attempts must be at least 1");
}

std::string S3Store::describe(const std::string& key) const { return "s3://" + bucket_ + "/" + key; }

S3Store::Response S3Store::perform(const Request& req) {
  // URL: path style http(s)://host/bucket/key, or virtual-hosted http(s)://bucket.host/key.
  std::string url;
  bool virtual_host = !cfg_.path_style && bucket_.find('.') == std::string::npos;
  if (virtual_host) {
    size_t scheme_end = cfg_.endpoint.find("://") + 3;
    url = cfg_.endpoint.substr(0, scheme_end) + bucket_ + "." + cfg_.endpoint.substr(scheme_end) + "/";
  } else {
    url = cfg_.endpoint + "/" + s3_uri_encode(bucket_, false) + (req.key.empty() ? "" : "/");
  }
  url += s3_uri_encode(req.key, true);
  if (!req.query.empty()) url += "?" + req.query;
  std::string what = fmt::format("{} {}{}", req.method, describe(req.key),
                                 req.query.empty() ? "" : "?" + req.query);
  std::string sigv4 = "aws:amz:" + cfg_.region + ":s3";
  std::string content_sha = "x-amz-content-sha256: " + sha256_hex(req.body ? req.body : "", req.body_size);

  std::string last_error;
  auto check_cancel = [&] {
    if (cancelled()) fail("S3 {}: cancelled (the run is exiting){}", what, last_error.empty() ? "" : "; last error: " + last_error);
  };
  for (int attempt = 1; attempt <= cfg_.max_attempts; ++attempt) {
    check_cancel();
    if (attempt > 1) {
      double wait = std::min(30.0, cfg_.retry_base_seconds * double(1 << std::min(attempt - 2, 10)));
      log::warn("S3 {}: {}; retrying in {:.1f} s (attempt {}/{})", what, last_error, wait, attempt,
                cfg_.max_attempts);
      auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait);
      while (std::chrono::steady_clock::now() < until && !cancelled())
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      check_cancel();
    }
    if (req.download_fd >= 0 && (::ftruncate(req.download_fd, 0) != 0 || ::lseek(req.download_fd, 0, SEEK_SET) != 0))
      fail("S3 {}: cannot reset the download file: {}", what, std::strerror(errno));

    Response resp;
    Sink sink{&resp, req.download_fd};
    Body body{req.body, req.body_size, 0};
    CURL* h = curl_easy_init();
    LT_CHECK(h, "curl_easy_init failed");
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, content_sha.c_str());
    std::string token_header;
    if (!cfg_.session_token.empty()) {
      token_header = "x-amz-security-token: " + cfg_.session_token;
      headers = curl_slist_append(headers, token_header.c_str());
    }
    if (req.method == "POST") headers = curl_slist_append(headers, "Content-Type: application/xml");
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(h, CURLOPT_USERNAME, cfg_.access_key_id.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, cfg_.secret_access_key.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, cfg_.connect_timeout_seconds);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, cfg_.stall_timeout_seconds);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, write_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &resp);
    if (cancel_) {
      curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, cancel_check);
      curl_easy_setopt(h, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(cancel_));
    }
    if (req.method == "PUT") {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, read_body);
      curl_easy_setopt(h, CURLOPT_READDATA, &body);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(req.body_size));
    } else if (req.method == "POST") {
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body ? req.body : "");
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(req.body_size));
    } else if (req.method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (req.method != "GET") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    resp.status = status;

    if (sink.write_failed) fail("S3 {}: writing the downloaded data failed: {}", what, std::strerror(errno));
    if (rc == CURLE_ABORTED_BY_CALLBACK) check_cancel();
    if (rc != CURLE_OK) {
      last_error = fmt::format("{} ({})", curl_easy_strerror(rc), cfg_.endpoint);
      if (retryable_curl_error(rc)) continue;
      fail("S3 {}: {}", what, last_error);
    }
    // S3 can answer a CompleteMultipartUpload with 200 and an <Error> body.
    bool error_in_200 = status == 200 && req.method == "POST" && resp.body.find("<Error>") != std::string::npos;
    if (status >= 500 || status == 429 || error_in_200) {
      last_error = fmt::format("HTTP {} {} {}", status, xml_first(resp.body, "Code"),
                               xml_first(resp.body, "Message"));
      continue;
    }
    return resp;
  }
  fail("S3 {}: gave up after {} attempts; last error: {}{}", what, cfg_.max_attempts, last_error,
       last_error.find("connect") != std::string::npos ? " (is the endpoint reachable?)" : "");
}

namespace {

// Turns a non-2xx answer into a message that says what to fix.
[[noreturn]] void fail_status(const S3Store::Response& r, const std::string& what,
                              const S3Config& cfg, const std::string& bucket) {
  std::string code = xml_first(r.body, "Code"), msg = xml_first(r.body, "Message");
  if (r.status == 403 || code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId")
    fail("S3 {}: access denied (HTTP {} {}{}{}): check the credentials from {} (access key id {}) "
         "and the region '{}'",
         what, r.status, code.empty() ? "Forbidden" : code, msg.empty() ? "" : ": ", msg,
         cfg.credentials_source.empty() ? "the configuration" : cfg.credentials_source,
         cfg.access_key_id, cfg.region);
  if (code == "NoSuchBucket")
    fail("S3 {}: bucket '{}' does not exist at {}", what, bucket, cfg.endpoint);
  if (code == "NoSuchKey" || (r.status == 404 && code.empty()))
    fail("S3 {}: no such object", what);
  fail("S3 {}: HTTP {} {}{}{}", what, r.status, code, msg.empty() ? "" : ": ", msg);
}

bool ok(long status) { return status >= 200 && status < 300; }

}  // namespace

void S3Store::put_file(const std::string& local_path, const std::string& key) {
  std::error_code ec;
  uint64_t size = fs::file_size(local_path, ec);
  if (ec) fail("cannot upload {}: {}", local_path, ec.message());
  if (size > cfg_.multipart_threshold) return put_multipart(local_path, key, size);
  std::string data = read_file(local_path);
  Request req{"PUT", key, "", data.data(), data.size()};
  Response r = perform(req);
  if (!ok(r.status)) fail_status(r, "PUT " + describe(key), cfg_, bucket_);
}

void S3Store::put_multipart(const std::string& local_path, const std::string& key, uint64_t size) {
  // S3 allows at most 10000 parts: grow the part size for very large files.
  const uint64_t part_size = std::max<uint64_t>(cfg_.part_size, (size + 9999) / 10000);
  const int n_parts = int((size + part_size - 1) / part_size);
  Response init = perform({"POST", key, "uploads="});
  if (!ok(init.status)) fail_status(init, "POST " + describe(key) + "?uploads", cfg_, bucket_);
  std::string upload_id = xml_first(init.body, "UploadId");
  LT_CHECK(!upload_id.empty(), "S3 initiate multipart upload of {}: no UploadId in the answer", describe(key));
  std::string id_query = "uploadId=" + s3_uri_encode(upload_id, false);

  int fd = ::open(local_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open {}: {}", local_path, std::strerror(errno));
  // Parts go up on `parallel_parts` threads, each with its own part buffer; the first error
  // stops the others and the upload is aborted.
  std::vector<std::string> etags(static_cast<size_t>(n_parts));
  std::atomic<int> next{0};
  std::mutex error_mu;
  std::exception_ptr first_error;
  auto worker = [&] {
    std::string buf;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(error_mu);
        if (first_error) return;
      }
      int i = next++;
      if (i >= n_parts) return;
      try {
        uint64_t off = uint64_t(i) * part_size;
        size_t len = size_t(std::min<uint64_t>(part_size, size - off));
        buf.resize(len);
        for (size_t got = 0; got < len;) {
          ssize_t n = ::pread(fd, buf.data() + got, len - got, off_t(off + got));
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0)
            fail("reading {} at offset {}: {}", local_path, off + got,
                 n == 0 ? "unexpected end of file (did it change during the upload?)" : std::strerror(errno));
          got += size_t(n);
        }
        // Query keys sorted: partNumber < uploadId.
        Response r = perform({"PUT", key, "partNumber=" + std::to_string(i + 1) + "&" + id_query, buf.data(), len});
        if (!ok(r.status)) fail_status(r, fmt::format("PUT part {} of {}", i + 1, describe(key)), cfg_, bucket_);
        LT_CHECK(!r.headers["etag"].empty(), "S3 PUT part {} of {}: stored without an ETag", i + 1, describe(key));
        etags[size_t(i)] = r.headers["etag"];
        if (cfg_.after_part) cfg_.after_part(key, i + 1);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!first_error) first_error = std::current_exception();
        return;
      }
    }
  };
  int n_threads = std::clamp(cfg_.parallel_parts, 1, n_parts);
  std::vector<std::thread> threads;
  for (int t = 1; t < n_threads; ++t) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  ::close(fd);

  try {
    if (first_error) std::rethrow_exception(first_error);
    std::string complete = "<CompleteMultipartUpload>";
    for (int i = 0; i < n_parts; ++i)
      complete += fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", i + 1, etags[size_t(i)]);
    complete += "</CompleteMultipartUpload>";
    Response done = perform({"POST", key, id_query, complete.data(), complete.size()});
    if (!ok(done.status)) fail_status(done, "complete multipart upload of " + describe(key), cfg_, bucket_);
  } catch (...) {
    // Abort so the parts do not linger (and cost) on the server; best effort.
    try {
      perform({"DELETE", key, id_query});
    } catch (const std::exception& abort_error) {
      log::warn("S3: could not abort the multipart upload of {}: {}", describe(key), abort_error.what());
    }
    throw;
  }
}

void S3Store::get_file(const std::string& key, const std::string& local_path) {
  fs::path parent = fs::path(local_path).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) fail("cannot create directory {}: {}", parent.string(), ec.message());
  std::string tmp = local_path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create {}: {}", tmp, std::strerror(errno));
  try {
    Request req{"GET", key, ""};
    req.download_fd = fd;
    Response r = perform(req);
    if (!ok(r.status)) fail_status(r, "GET " + describe(key), cfg_, bucket_);
    if (::fsync(fd) != 0) fail("cannot write {}: {}", tmp, std::strerror(errno));
    if (r.headers.count("content-length")) {
      off_t got = ::lseek(fd, 0, SEEK_END);
      LT_CHECK(uint64_t(got) == std::stoull(r.headers["content-length"]),
               "S3 GET {}: got {} bytes, expected {}", describe(key), got, r.headers["content-length"]);
    }
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), local_path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot rename {} to {}: {}", tmp, local_path, std::strerror(e));
  }
  fsync_dir(parent.string());
}

std::vector<RemoteObject> S3Store::list(const std::string& prefix) {
  std::vector<RemoteObject> out;
  std::string token;
  for (;;) {
    // Query keys sorted: continuation-token < list-type < max-keys < prefix.
    std::string q;
    if (!token.empty()) q += "continuation-token=" + s3_uri_encode(token, false) + "&";
    q += "list-type=2&max-keys=" + std::to_string(cfg_.list_page_size) + "&prefix=" + s3_uri_encode(prefix, false);
    Response r = perform({"GET", "", q});
    if (!ok(r.status)) fail_status(r, "list " + describe(prefix), cfg_, bucket_);
    for (const std::string& item : xml_all(r.body, "Contents")) {
      std::string size = xml_first(item, "Size");
      out.push_back({xml_first(item, "Key"), size.empty() ? 0 : std::stoull(size)});
    }
    if (xml_first(r.body, "IsTruncated") != "true") break;
    token = xml_first(r.body, "NextContinuationToken");
    LT_CHECK(!token.empty(), "S3 list {}: truncated listing without a continuation token", describe(prefix));
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.key < b.key; });
  return out;
}

bool S3Store::exists(const std::string& key) {
  Response r = perform({"HEAD", key, ""});
  if (ok(r.status)) return true;
  if (r.status == 404) return false;
  fail_status(r, "HEAD " + describe(key), cfg_, bucket_);
}

void S3Store::remove(const std::string& key) {
  Response r = perform({"DELETE", key, ""});
  if (!ok(r.status) && r.status != 404) fail_status(r, "DELETE " + describe(key), cfg_, bucket_);
}

void S3Store::check_access() {
  Response r = perform({"GET", "", "list-type=2&max-keys=1"});
  if (!ok(r.status)) fail_status(r, "list " + describe(""), cfg_, bucket_);
}

}  // namespace lt
