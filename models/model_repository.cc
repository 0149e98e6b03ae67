#include "models/model_repository.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "tandem/v1/model_config.pb.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;

// Version directories of a package that hold model.pt, ascending.
std::vector<int64_t> VersionsOnDisk(const fs::path& dir) {
  std::vector<int64_t> versions;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    int64_t number = 0;
    if (entry.is_directory(ec) &&
        absl::SimpleAtoi(entry.path().filename().string(), &number) &&
        number > 0 && fs::exists(entry.path() / "model.pt", ec)) {
      versions.push_back(number);
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

// The versions `policy` selects among `on_disk` (ascending).
absl::StatusOr<std::vector<int64_t>> Select(
    const tandem::v1::VersionPolicy& policy,
    const std::vector<int64_t>& on_disk, const std::string& where) {
  if (on_disk.empty()) {
    return absl::NotFoundError(
        absl::StrCat(where, ": no version directory with model.pt"));
  }
  switch (policy.policy_case()) {
    case tandem::v1::VersionPolicy::kAll:
      return on_disk;
    case tandem::v1::VersionPolicy::kSpecific: {
      std::set<int64_t> wanted(policy.specific().versions().begin(),
                               policy.specific().versions().end());
      if (wanted.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": version_policy.specific lists no version"));
      }
      for (int64_t version : wanted) {
        if (!std::binary_search(on_disk.begin(), on_disk.end(), version)) {
          return absl::NotFoundError(
              absl::StrCat(where, ": version_policy asks for version ", version,
                           ", which has no model.pt (on disk: ",
                           absl::StrJoin(on_disk, ", "), ")"));
        }
      }
      return std::vector<int64_t>(wanted.begin(), wanted.end());
    }
    case tandem::v1::VersionPolicy::kLatest:
    case tandem::v1::VersionPolicy::POLICY_NOT_SET: {
      const int n = policy.has_latest() ? policy.latest().num_versions() : 1;
      if (n < 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": version_policy.latest.num_versions ", n, " is below 1"));
      }
      const size_t keep = std::min<size_t>(n, on_disk.size());
      return std::vector<int64_t>(on_disk.end() - keep, on_disk.end());
    }
  }
  return absl::InternalError("unknown version policy");
}

// What identifies a version's files: sizes and modification times.
std::string Stamp(const fs::path& package, int64_t version) {
  std::string stamp;
  for (const fs::path& file : {package / "config.pbtxt",
                               package / absl::StrCat(version) / "model.pt"}) {
    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    const auto time = fs::last_write_time(file, ec);
    absl::StrAppend(&stamp, file.filename().string(), ":", size, ":",
                    time.time_since_epoch().count(), ";");
  }
  return stamp;
}

// The model packages under `root`, sorted.
absl::StatusOr<std::vector<fs::path>> Packages(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return absl::NotFoundError(
        absl::StrCat("model repository ", root, " is not a directory"));
  }
  std::vector<fs::path> packages;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (entry.is_directory(ec) &&
        fs::exists(entry.path() / "config.pbtxt", ec)) {
      packages.push_back(entry.path());
    }
  }
  if (packages.empty()) {
    return absl::NotFoundError(
        absl::StrCat("model repository ", root, " holds no model"));
  }
  std::sort(packages.begin(), packages.end());
  return packages;
}

std::string Id(const std::string& name, int64_t version) {
  return absl::StrCat(name, ":", version);
}

}  // namespace

absl::StatusOr<ModelRepository::Versions> ModelRepository::LoadPackage(
    const std::string& dir, const ModelLoadOptions& options,
    const Versions* previous, ReloadReport* report) {
  const fs::path package(dir);
  const std::string config_path = (package / "config.pbtxt").string();
  tandem::v1::ModelConfig config;
  RETURN_IF_ERROR(ReadTextProtoFile(config_path, &config));
  std::vector<int64_t> on_disk = VersionsOnDisk(package);
  if (options.newest_version_only && !on_disk.empty()) {
    on_disk.erase(on_disk.begin(), on_disk.end() - 1);
    config.clear_version_policy();
  }
  ASSIGN_OR_RETURN(const std::vector<int64_t> selected,
                   Select(config.version_policy(), on_disk, config_path));
  Versions versions;
  for (int64_t version : selected) {
    const std::string stamp = Stamp(package, version);
    if (previous != nullptr) {
      const auto it = previous->find(version);
      if (it != previous->end() && it->second.stamp == stamp) {
        versions.emplace(version, it->second);
        if (report != nullptr) {
          report->kept.push_back(Id(it->second.model->name(), version));
        }
        continue;
      }
    }
    ModelLoadOptions one = options;
    one.version = absl::StrCat(version);
    ASSIGN_OR_RETURN(std::unique_ptr<ProgressiveModel> model,
                     ProgressiveModel::Load(dir, one));
    TANDEM_LOG(INFO) << "loaded model " << model->name() << " version "
                     << model->version() << " (" << model->num_blocks()
                     << " blocks, exits after " << model->exit_blocks().size()
                     << ")";
    if (report != nullptr) report->loaded.push_back(Id(model->name(), version));
    versions.emplace(version, Loaded{std::move(model), stamp});
  }
  return versions;
}

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Load(
    const std::string& root, const ModelLoadOptions& options) {
  ASSIGN_OR_RETURN(const std::vector<fs::path> packages, Packages(root));
  std::unique_ptr<ModelRepository> repo(new ModelRepository());
  repo->root_ = root;
  for (const fs::path& dir : packages) {
    ASSIGN_OR_RETURN(Versions versions,
                     LoadPackage(dir.string(), options, nullptr, nullptr));
    const std::string name = versions.begin()->second.model->name();
    repo->models_.emplace(name, std::move(versions));
  }
  return repo;
}

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Reload(
    const ModelRepository& previous, const ModelLoadOptions& options,
    ReloadReport* report) {
  ASSIGN_OR_RETURN(const std::vector<fs::path> packages,
                   Packages(previous.root_));
  ReloadReport ignored;
  if (report == nullptr) report = &ignored;
  std::unique_ptr<ModelRepository> repo(new ModelRepository());
  repo->root_ = previous.root_;
  for (const fs::path& dir : packages) {
    // Packages are keyed by directory name, which must equal the model name.
    const std::string name = dir.filename().string();
    const auto old = previous.models_.find(name);
    const Versions* old_versions =
        old == previous.models_.end() ? nullptr : &old->second;
    absl::StatusOr<Versions> versions =
        LoadPackage(dir.string(), options, old_versions, report);
    if (versions.ok()) {
      repo->models_.emplace(name, *std::move(versions));
      continue;
    }
    report->errors[name] = versions.status();
    if (old_versions != nullptr) {
      repo->models_.emplace(name, *old_versions);
      for (const auto& [version, loaded] : *old_versions) {
        report->kept.push_back(Id(name, version));
      }
    }
  }
  for (const auto& [name, versions] : previous.models_) {
    const auto now = repo->models_.find(name);
    for (const auto& [version, loaded] : versions) {
      if (now == repo->models_.end() || now->second.count(version) == 0) {
        report->unloaded.push_back(Id(name, version));
      }
    }
  }
  return repo;
}

absl::StatusOr<std::shared_ptr<const ProgressiveModel>>
ModelRepository::GetShared(absl::string_view name,
                           absl::string_view version) const {
  const auto it = models_.find(name);
  if (it == models_.end() || it->second.empty()) {
    return absl::NotFoundError(absl::StrCat("unknown model '", name, "'"));
  }
  const Versions& versions = it->second;
  if (version.empty()) return versions.rbegin()->second.model;
  int64_t number = 0;
  const auto found = absl::SimpleAtoi(version, &number) ? versions.find(number)
                                                        : versions.end();
  if (found == versions.end()) {
    std::vector<int64_t> loaded;
    for (const auto& [v, unused] : versions) loaded.push_back(v);
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' has no version '", version,
                     "' (loaded: ", absl::StrJoin(loaded, ", "), ")"));
  }
  return found->second.model;
}

absl::StatusOr<const ProgressiveModel*> ModelRepository::Get(
    absl::string_view name, absl::string_view version) const {
  ASSIGN_OR_RETURN(std::shared_ptr<const ProgressiveModel> model,
                   GetShared(name, version));
  return model.get();
}

std::vector<const ProgressiveModel*> ModelRepository::models() const {
  std::vector<const ProgressiveModel*> out;
  for (const auto& [name, versions] : models_) {
    if (!versions.empty()) out.push_back(versions.rbegin()->second.model.get());
  }
  return out;
}

std::vector<const ProgressiveModel*> ModelRepository::all_versions() const {
  std::vector<const ProgressiveModel*> out;
  for (const auto& [name, versions] : models_) {
    for (const auto& [version, loaded] : versions) {
      out.push_back(loaded.model.get());
    }
  }
  return out;
}

}  // namespace tandem
