// A Triton-style model repository: every subdirectory holding config.pbtxt
// is a model package (see progressive_model.h). Loading is strict: one broken
// package fails the whole load, naming it, so a server never starts half
// configured.
//
// Thread-safe after Load (read-only).
//
//   ASSIGN_OR_RETURN(auto repo, ModelRepository::Load("/srv/models", {}));
//   ASSIGN_OR_RETURN(const ProgressiveModel* m, repo->Get("fmnist_branchy"));
#ifndef TANDEM_MODELS_MODEL_REPOSITORY_H_
#define TANDEM_MODELS_MODEL_REPOSITORY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/progressive_model.h"

namespace tandem {

class ModelRepository {
 public:
  // NOT_FOUND when `root` is missing or holds no model; the first package's
  // error otherwise.
  static absl::StatusOr<std::unique_ptr<ModelRepository>> Load(
      const std::string& root, const ModelLoadOptions& options);

  // NOT_FOUND for an unknown name, or a version other than the loaded one
  // (empty `version` matches any).
  absl::StatusOr<const ProgressiveModel*> Get(
      absl::string_view name, absl::string_view version = "") const;
  std::vector<const ProgressiveModel*> models() const;
  const std::string& root() const { return root_; }

 private:
  ModelRepository() = default;
  std::string root_;
  std::map<std::string, std::unique_ptr<ProgressiveModel>, std::less<>> models_;
};

}  // namespace tandem

#endif  // TANDEM_MODELS_MODEL_REPOSITORY_H_
