#include "models/model_repository.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace tandem {

namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Load(
    const std::string& root, const ModelLoadOptions& options) {
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
  std::unique_ptr<ModelRepository> repo(new ModelRepository());
  repo->root_ = root;
  for (const fs::path& dir : packages) {
    ASSIGN_OR_RETURN(std::unique_ptr<ProgressiveModel> model,
                     ProgressiveModel::Load(dir.string(), options));
    TANDEM_LOG(INFO) << "loaded model " << model->name() << " version "
                     << model->version() << " (" << model->num_blocks()
                     << " blocks, exits after " << model->exit_blocks().size()
                     << ")";
    const std::string name = model->name();
    repo->models_.emplace(name, std::move(model));
  }
  return repo;
}

absl::StatusOr<const ProgressiveModel*> ModelRepository::Get(
    absl::string_view name, absl::string_view version) const {
  const auto it = models_.find(name);
  if (it == models_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown model '", name, "'"));
  }
  if (!version.empty() && version != it->second->version()) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' has no version '", version,
                     "' (loaded: ", it->second->version(), ")"));
  }
  return it->second.get();
}

std::vector<const ProgressiveModel*> ModelRepository::models() const {
  std::vector<const ProgressiveModel*> out;
  for (const auto& [name, model] : models_) out.push_back(model.get());
  return out;
}

}  // namespace tandem
