// S3-compatible object storage as a RemoteStore, over HTTP(S) with libcurl.
//
// Requests are signed with AWS Signature V4 by libcurl (CURLOPT_AWS_SIGV4); we add the
// x-amz-content-sha256 header (hex SHA-256 of the body, OpenSSL) that S3 requires and curl
// 7.88 does not add, and build canonical (sorted, percent-encoded) query strings ourselves.
// Files above `multipart_threshold` go up as a multipart upload (initiate, parts of
// `part_size` sent `parallel_parts` at a time, complete; abort on failure), so no object is
// ever visible half-written.
// Connection errors, timeouts, HTTP 5xx and 429 are retried with exponential backoff;
// other errors (403 with S3's error code, a missing bucket or key) fail at once with a
// message that names the object and the endpoint. Secrets never appear in any message.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ckpt/remote_store.h"

namespace lt {

struct S3Config {
  std::string endpoint;             // "https://s3.us-east-1.amazonaws.com", "http://127.0.0.1:9000"
  std::string region = "us-east-1";
  std::string access_key_id;
  std::string secret_access_key;    // never logged
  std::string session_token;        // optional (temporary credentials); never logged
  bool path_style = true;           // endpoint/bucket/key; false: bucket.host/key (AWS default)
  std::string credentials_source;   // where the keys came from, for messages ("environment", ...)

  uint64_t multipart_threshold = 64ull << 20;  // files larger than this use multipart upload
  uint64_t part_size = 64ull << 20;            // >= 5 MiB (S3's minimum, except the last part)
  int parallel_parts = 4;                      // parts in flight at once (one buffer each)
  int max_attempts = 5;                        // per HTTP request, including the first
  double retry_base_seconds = 0.5;             // backoff: base * 2^(attempt-1), at most 30 s
  int list_page_size = 1000;     // keys per ListObjectsV2 page (S3's maximum)
  long connect_timeout_seconds = 10;
  long stall_timeout_seconds = 60;  // abort a transfer slower than 1 KiB/s for this long

  // Test hook: called after each multipart part is stored (key, 1-based part number), from
  // the upload threads.
  std::function<void(const std::string& key, int part)> after_part;

  // From the usual AWS sources, in the AWS CLI's order of precedence:
  //  credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else the
  //    profile (AWS_PROFILE, default "default") in AWS_SHARED_CREDENTIALS_FILE
  //    (~/.aws/credentials), else in AWS_CONFIG_FILE (~/.aws/config);
  //  region: AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`, else us-east-1;
  //  endpoint: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's `endpoint_url`, else
  //    AWS's regional endpoint with virtual-hosted addressing.
  // Throws when no credentials are found (instance-role credentials are not fetched).
  static S3Config from_environment();
};

class S3Store : public RemoteStore {
 public:
  S3Store(std::string bucket, S3Config config);

  void put_file(const std::string& local_path, const std::string& key) override;
  void get_file(const std::string& key, const std::string& local_path) override;
  std::vector<RemoteObject> list(const std::string& prefix) override;
  bool exists(const std::string& key) override;
  void remove(const std::string& key) override;
  std::string describe(const std::string& key) const override;
  void set_cancel_flag(const std::atomic<bool>* flag) override { cancel_ = flag; }

  // One cheap signed request (a 1-key listing) so that bad credentials, a missing bucket
  // or an unreachable endpoint fail at startup rather than at the first checkpoint.
  void check_access() override;

  struct Response;  // defined in s3_client.cpp
  struct Request;

 private:
  Response perform(const Request& req);
  void put_multipart(const std::string& local_path, const std::string& key, uint64_t size);

  bool cancelled() const { return cancel_ && cancel_->load(); }

  std::string bucket_;
  S3Config cfg_;
  const std::atomic<bool>* cancel_ = nullptr;
};

// Helpers exposed for tests.
std::string sha256_hex(const void* data, size_t size);
// Percent-encodes everything but A-Za-z0-9-_.~ (and '/' when keep_slash), as SigV4 wants.
std::string s3_uri_encode(const std::string& s, bool keep_slash);

}  // namespace lt
