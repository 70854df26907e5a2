// S3Config::from_environment: credentials, region and endpoint from the AWS environment
// variables and the ~/.aws files (INI: "[profile]" sections of "key = value" lines).
#include <cstdlib>
#include <fstream>
#include <map>

#include "ckpt/s3_client.h"
#include "core/error.h"

namespace lt {
namespace {

using Section = std::map<std::string, std::string>;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// The keys of section `name` in an INI file; empty if the file or section is absent.
// Indented lines continue a nested block (e.g. "s3 =\n  addressing_style = path") and are
// stored as "<parent>.<key>".
Section read_ini_section(const std::string& path, const std::string& name) {
  Section out;
  std::ifstream in(path);
  if (!in) return out;
  std::string line, current, parent;
  while (std::getline(in, line)) {
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[' && t.back() == ']') {
      current = trim(t.substr(1, t.size() - 2));
      parent.clear();
      continue;
    }
    if (current != name) continue;
    size_t eq = t.find('=');
    if (eq == std::string::npos) continue;
    std::string key = trim(t.substr(0, eq)), value = trim(t.substr(eq + 1));
    bool nested = !line.empty() && (line[0] == ' ' || line[0] == '\t');
    if (nested && !parent.empty()) {
      out[parent + "." + key] = value;
    } else {
      out[key] = value;
      parent = value.empty() ? key : "";
    }
  }
  return out;
}

std::string home_file(const char* env_name, const char* rel) {
  std::string p = env(env_name);
  if (!p.empty()) return p;
  std::string home = env("HOME");
  return home.empty() ? std::string() : home + "/" + rel;
}

}  // namespace

S3Config S3Config::from_environment() {
  S3Config c;
  std::string profile = env("AWS_PROFILE");
  if (profile.empty()) profile = "default";
  std::string cred_path = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
  std::string config_path = home_file("AWS_CONFIG_FILE", ".aws/config");
  Section creds = read_ini_section(cred_path, profile);
  // ~/.aws/config names non-default profiles "[profile NAME]".
  Section conf = read_ini_section(config_path, profile == "default" ? "default" : "profile " + profile);

  if (!env("AWS_ACCESS_KEY_ID").empty()) {
    c.access_key_id = env("AWS_ACCESS_KEY_ID");
    c.secret_access_key = env("AWS_SECRET_ACCESS_KEY");
    c.session_token = env("AWS_SESSION_TOKEN");
    c.credentials_source = "environment (AWS_ACCESS_KEY_ID)";
    LT_CHECK(!c.secret_access_key.empty(),
             "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
  } else {
    for (auto* s : {&creds, &conf}) {
      if (s->count("aws_access_key_id")) {
        c.access_key_id = (*s)["aws_access_key_id"];
        c.secret_access_key = (*s)["aws_secret_access_key"];
        c.session_token = (*s)["aws_session_token"];
        c.credentials_source = fmt::format("profile '{}' in {}", profile,
                                           s == &creds ? cred_path : config_path);
        LT_CHECK(!c.secret_access_key.empty(), "{}: aws_access_key_id without aws_secret_access_key",
                 c.credentials_source);
        break;
      }
    }
  }
  if (c.access_key_id.empty())
    fail("no AWS credentials for S3: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
         "configure profile '{}' (AWS_PROFILE) in {} (instance-role credentials are not supported)",
         profile, cred_path.empty() ? "~/.aws/credentials" : cred_path);

  c.region = env("AWS_REGION");
  if (c.region.empty()) c.region = env("AWS_DEFAULT_REGION");
  if (c.region.empty() && conf.count("region")) c.region = conf["region"];
  if (c.region.empty()) c.region = "us-east-1";

  c.endpoint = env("AWS_ENDPOINT_URL_S3");
  if (c.endpoint.empty()) c.endpoint = env("AWS_ENDPOINT_URL");
  if (c.endpoint.empty() && conf.count("s3.endpoint_url")) c.endpoint = conf["s3.endpoint_url"];
  if (c.endpoint.empty() && conf.count("endpoint_url")) c.endpoint = conf["endpoint_url"];
  if (c.endpoint.empty()) {
    c.endpoint = "https://s3." + c.region + ".amazonaws.com";
    c.path_style = false;  // AWS's own endpoint: bucket.s3.<region>.amazonaws.com
  }
  if (conf.count("s3.addressing_style")) c.path_style = conf["s3.addressing_style"] != "virtual";
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  LT_CHECK(c.endpoint.rfind("http://", 0) == 0 || c.endpoint.rfind("https://", 0) == 0,
           "S3 endpoint '{}' must start with http:// or https://", c.endpoint);
  return c;
}

}  // namespace lt
