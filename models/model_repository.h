// A Triton-style model repository: every subdirectory holding config.pbtxt
// is a model package (see progressive_model.h), with numbered version
// directories; the package's `version_policy` says which versions load
// (default: the newest).
//
// Load() is strict: one broken package fails the whole load, naming it, so
// a server never starts half configured. Reload() is what a running server
// does on SIGHUP: it rescans the directory into a new repository that shares
// the models whose files did not change, loads (and warms) new or changed
// versions, drops removed ones, and keeps a model's old versions when its
// new files do not load, reporting why. Callers swap the new repository in;
// models are shared, so requests running on an old one are unaffected.
//
// Thread-safe (read-only once built).
//
//   ASSIGN_OR_RETURN(auto repo, ModelRepository::Load("/srv/models", {}));
//   ASSIGN_OR_RETURN(const ProgressiveModel* m, repo->Get("fmnist_branchy"));
#ifndef TANDEM_MODELS_MODEL_REPOSITORY_H_
#define TANDEM_MODELS_MODEL_REPOSITORY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/progressive_model.h"

namespace tandem {

class ModelRepository {
 public:
  // NOT_FOUND when `root` is missing or holds no model; the first package's
  // error otherwise. `options.version` is ignored (the policy decides).
  static absl::StatusOr<std::unique_ptr<ModelRepository>> Load(
      const std::string& root, const ModelLoadOptions& options);

  // What a Reload did, in words, and what failed (the failing model keeps
  // the versions `previous` had).
  struct ReloadReport {
    std::vector<std::string> loaded;    // "name:version", new or changed.
    std::vector<std::string> unloaded;  // "name:version", gone.
    std::vector<std::string> kept;      // "name:version", unchanged.
    std::map<std::string, absl::Status> errors;  // By model (package) name.
  };
  // Rescans `previous`'s root. NOT_FOUND only when the root itself is gone
  // or empty (then nothing changes).
  static absl::StatusOr<std::unique_ptr<ModelRepository>> Reload(
      const ModelRepository& previous, const ModelLoadOptions& options,
      ReloadReport* report);

  // NOT_FOUND for an unknown name or a version that is not loaded; an empty
  // `version` is the newest loaded one.
  absl::StatusOr<const ProgressiveModel*> Get(
      absl::string_view name, absl::string_view version = "") const;
  // The same, sharing ownership: the model outlives this repository while
  // the caller holds it.
  absl::StatusOr<std::shared_ptr<const ProgressiveModel>> GetShared(
      absl::string_view name, absl::string_view version = "") const;
  // The newest loaded version of every model, by name.
  std::vector<const ProgressiveModel*> models() const;
  // Every loaded version of every model, by name then version.
  std::vector<const ProgressiveModel*> all_versions() const;
  const std::string& root() const { return root_; }

 private:
  struct Loaded {
    std::shared_ptr<const ProgressiveModel> model;
    std::string stamp;  // Sizes and mtimes of its files: changed => reload.
  };
  // Versions by number.
  using Versions = std::map<int64_t, Loaded>;

  ModelRepository() = default;
  // Loads the versions `dir`'s policy selects, reusing `previous`'s models
  // whose files are unchanged (previous may be null).
  static absl::StatusOr<Versions> LoadPackage(const std::string& dir,
                                              const ModelLoadOptions& options,
                                              const Versions* previous,
                                              ReloadReport* report);

  std::string root_;
  std::map<std::string, Versions, std::less<>> models_;
};

}  // namespace tandem

#endif  // TANDEM_MODELS_MODEL_REPOSITORY_H_
