#include "common/access_control.h"

#include <algorithm>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "common/text_proto.h"

namespace tandem {
namespace {

constexpr size_t kMaxTokensFileBytes = 1 << 20;
// Shorter tokens are guessable; a file with one is refused.
constexpr size_t kMinTokenLength = 16;
constexpr size_t kMaxTokenLength = 4096;

// 64-bit FNV-1a: a name for a token in logs that does not reveal it.
uint64_t Fnv1a(absl::string_view text) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

// True when `a` equals `b`, in time that depends on the lengths only.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0;
    const unsigned char y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

// "ipv4:10.0.0.7:51234" -> "ipv4:10.0.0.7"; "ipv6:[::1]:80" -> "ipv6:[::1]";
// unix peers (one machine's users) -> "unix:".
std::string ClientOfPeer(absl::string_view peer) {
  if (absl::StartsWith(peer, "unix:")) return "unix:";
  const size_t colon = peer.rfind(':');
  const size_t scheme = peer.find(':');
  if (colon == absl::string_view::npos || colon == scheme)
    return std::string(peer);
  return std::string(peer.substr(0, colon));
}

}  // namespace

AccessControl::Admission& AccessControl::Admission::operator=(
    Admission&& other) noexcept {
  if (this != &other) {
    Release();
    owner_ = std::exchange(other.owner_, nullptr);
    client_ = std::move(other.client_);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void AccessControl::Admission::Release() {
  if (owner_ != nullptr) owner_->Release(client_, bytes_);
  owner_ = nullptr;
}

absl::StatusOr<std::unique_ptr<AccessControl>> AccessControl::Create(
    const Options& options) {
  if (options.max_inflight_per_client < 0 ||
      options.max_inflight_tensor_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_inflight_per_client (", options.max_inflight_per_client,
        ") and max_inflight_tensor_bytes (", options.max_inflight_tensor_bytes,
        ") must not be negative"));
  }
  std::unique_ptr<AccessControl> control(new AccessControl(options));
  RETURN_IF_ERROR(control->Reload());
  return control;
}

AccessControl::~AccessControl() = default;

absl::StatusOr<std::vector<AccessControl::Token>> AccessControl::ParseTokens(
    absl::string_view text, absl::string_view source) {
  std::vector<Token> tokens;
  std::set<absl::string_view> seen;  // Views into `text`.
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    const size_t hash = line.find('#');
    if (hash != absl::string_view::npos) line = line.substr(0, hash);
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    const absl::string_view secret = fields[0];
    if (secret.size() < kMinTokenLength || secret.size() > kMaxTokenLength) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s, line %d: a token must have %d to %d characters, this one has "
          "%d",
          source, line_number, kMinTokenLength, kMaxTokenLength,
          secret.size()));
    }
    if (!seen.insert(secret).second) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s, line %d: the same token twice", source, line_number));
    }
    Token token;
    token.secret = std::string(secret);
    token.caller.client = absl::StrFormat("token-%08x", Fnv1a(secret) >> 32);
    token.caller.all_models = fields.size() == 1;
    for (size_t i = 1; i < fields.size(); ++i)
      token.caller.models.insert(std::string(fields[i]));
    tokens.push_back(std::move(token));
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": no tokens (nobody could call)"));
  }
  return tokens;
}

absl::Status AccessControl::Reload() {
  if (options_.tokens_file.empty()) return absl::OkStatus();
  std::string text;
  RETURN_IF_ERROR(ReadFile(options_.tokens_file, &text, kMaxTokensFileBytes));
  ASSIGN_OR_RETURN(std::vector<Token> tokens,
                   ParseTokens(text, options_.tokens_file));
  absl::MutexLock lock(&mu_);
  tokens_ = std::move(tokens);
  return absl::OkStatus();
}

bool AccessControl::tokens_required() const {
  absl::MutexLock lock(&mu_);
  return !tokens_.empty();
}

absl::StatusOr<AccessControl::Caller> AccessControl::Authenticate(
    absl::string_view authorization, absl::string_view peer) const {
  absl::MutexLock lock(&mu_);
  if (tokens_.empty()) {
    Caller caller;
    caller.client = ClientOfPeer(peer);
    return caller;
  }
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "this server needs 'authorization: Bearer TOKEN' metadata");
  }
  absl::string_view secret = absl::StripAsciiWhitespace(authorization);
  // RFC 6750: the scheme is case-insensitive.
  if (secret.size() < 7 ||
      !absl::EqualsIgnoreCase(secret.substr(0, 7), "bearer ")) {
    return absl::UnauthenticatedError(
        "the authorization metadata must be 'Bearer TOKEN'");
  }
  secret = absl::StripLeadingAsciiWhitespace(secret.substr(7));
  // Every token is compared, whatever matched, so the time taken says
  // nothing about which one did or how much of it.
  const Token* match = nullptr;
  for (const Token& token : tokens_) {
    if (ConstantTimeEquals(secret, token.secret)) match = &token;
  }
  if (match == nullptr) return absl::UnauthenticatedError("unknown token");
  return match->caller;
}

absl::Status AccessControl::CheckModel(const Caller& caller,
                                       absl::string_view model) {
  if (caller.all_models || model.empty() ||
      caller.models.count(std::string(model)) > 0) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "the token of ", caller.client, " does not cover model '", model, "'"));
}

absl::StatusOr<AccessControl::Admission> AccessControl::Admit(
    const Caller& caller, absl::string_view model, int64_t tensor_bytes) {
  RETURN_IF_ERROR(CheckModel(caller, model));
  tensor_bytes = std::max<int64_t>(tensor_bytes, 0);
  {
    absl::MutexLock lock(&mu_);
    int& inflight = inflight_[caller.client];
    if (options_.max_inflight_per_client > 0 &&
        inflight >= options_.max_inflight_per_client) {
      if (inflight == 0) inflight_.erase(caller.client);
      return absl::ResourceExhaustedError(
          absl::StrCat(caller.client, " has ", options_.max_inflight_per_client,
                       " requests in flight, the most one client may (limits."
                       "max_inflight_per_client)"));
    }
    if (options_.max_inflight_tensor_bytes > 0 &&
        tensor_bytes > options_.max_inflight_tensor_bytes - inflight_bytes_) {
      if (inflight == 0) inflight_.erase(caller.client);
      return absl::ResourceExhaustedError(absl::StrCat(
          "decoding ", tensor_bytes, " more tensor bytes would exceed the ",
          options_.max_inflight_tensor_bytes,
          " allowed in flight (limits.max_inflight_tensor_bytes; ",
          inflight_bytes_, " in use)"));
    }
    ++inflight;
    inflight_bytes_ += tensor_bytes;
  }
  Admission admission;
  admission.owner_ = this;
  admission.client_ = caller.client;
  admission.bytes_ = tensor_bytes;
  return admission;
}

void AccessControl::Release(const std::string& client, int64_t bytes) {
  absl::MutexLock lock(&mu_);
  auto it = inflight_.find(client);
  if (it != inflight_.end() && --it->second <= 0) inflight_.erase(it);
  inflight_bytes_ -= bytes;
}

int AccessControl::inflight(const std::string& client) const {
  absl::MutexLock lock(&mu_);
  auto it = inflight_.find(client);
  return it == inflight_.end() ? 0 : it->second;
}

int64_t AccessControl::inflight_tensor_bytes() const {
  absl::MutexLock lock(&mu_);
  return inflight_bytes_;
}

absl::StatusOr<std::string> ReadBearerToken(const std::string& path) {
  std::string text;
  RETURN_IF_ERROR(ReadFile(path, &text, kMaxTokenLength + 4096));
  std::string token;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    if (!token.empty() ||
        line.find_first_of(" \t") != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": more than one token in it"));
    }
    token = std::string(line);
  }
  if (token.empty())
    return absl::InvalidArgumentError(absl::StrCat(path, ": no token in it"));
  return token;
}

int64_t DecodedFloatBytes(const std::vector<std::vector<int64_t>>& shapes) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t total = 0;
  for (const std::vector<int64_t>& shape : shapes) {
    int64_t bytes = sizeof(float);
    for (int64_t dim : shape) {
      if (dim <= 0) {
        bytes = 0;
        break;
      }
      bytes = bytes > kMax / dim ? kMax : bytes * dim;
    }
    total = total > kMax - bytes ? kMax : total + bytes;
  }
  return total;
}

}  // namespace tandem
