#include "tools/plan_command.h"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "partitioner/planner.h"
#include "tandem/client.h"
#include "tools/connection_flags.h"

ABSL_FLAG(std::string, profile, "",
          "plan: a saved profile (tandem profile --out) instead of --edge");
ABSL_FLAG(std::string, bandwidth, "",
          "plan: uplink, e.g. 5.85mbit (default: measured/saved)");
ABSL_FLAG(std::string, rtt, "",
          "plan: round-trip time, e.g. 20ms (default: measured/saved)");
ABSL_FLAG(std::string, objective, "",
          "plan: latency, energy, accuracy or cloud");
ABSL_FLAG(int, plan_deadline_ms, 0, "plan: deadline in ms (0: none)");
ABSL_FLAG(double, plan_min_accuracy, 0,
          "plan: accuracy floor (0: the model's default)");
ABSL_FLAG(std::string, link, "",
          "plan --profile: radio power model: wifi, lte or 3g");
ABSL_FLAG(std::string, out, "",
          "profile: write the saved profile here (text proto)");

namespace tandem {
namespace {

absl::StatusOr<double> ParseNumberWithUnits(
    const std::string& raw,
    const std::vector<std::pair<std::string, double>>& units) {
  const std::string lowered =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(raw));
  absl::string_view text = lowered;
  double scale = 1;
  for (const auto& [suffix, factor] : units) {
    if (absl::ConsumeSuffix(&text, suffix)) {
      scale = factor;
      break;
    }
  }
  double value;
  if (!absl::SimpleAtod(text, &value) || value < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read '", text, "'"));
  }
  return value * scale;
}

std::string ExitsText(const tandem::v1::PlanAlternative& a) {
  if (a.forced_exit_block() >= 0)
    return absl::StrCat("forced@", a.forced_exit_block());
  if (a.exit_threshold() > 1) return "off";
  return absl::StrFormat("t=%.3g", a.exit_threshold());
}

std::string EncodingText(const tandem::v1::PlanAlternative& a) {
  if (a.offload_probability() == 0 && a.bytes_sent() == 0) return "-";
  switch (a.encoding()) {
    case tandem::v1::ENCODING_FP16:
      return "FP16";
    case tandem::v1::ENCODING_AFFINE_UINT8:
      return "INT8";
    default:
      return "FP32";
  }
}

double Metric(const tandem::v1::PlanAlternative& a,
              tandem::v1::Objective objective) {
  switch (objective) {
    case tandem::v1::OBJECTIVE_MIN_ENERGY:
      return a.energy_mj();
    case tandem::v1::OBJECTIVE_MAX_ACCURACY:
      return -a.accuracy();
    case tandem::v1::OBJECTIVE_MIN_CLOUD_COMPUTE:
      return a.cloud_ms();
    default:
      return a.latency_ms();
  }
}

absl::Status Print(const tandem::v1::Plan& plan) {
  if (!absl::GetFlag(FLAGS_json)) {
    std::cout << FormatPlanTable(plan);
    return absl::OkStatus();
  }
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  const auto status =
      google::protobuf::util::MessageToJsonString(plan, &text, options);
  if (!status.ok())
    return absl::InternalError(
        absl::StrCat("plan to JSON: ", status.ToString()));
  std::cout << text << "\n";
  return absl::OkStatus();
}

absl::StatusOr<tandem::v1::Objective> ObjectiveFromFlags() {
  const std::string name = absl::GetFlag(FLAGS_objective);
  return ParseObjective(name.empty() ? "latency" : name);
}

absl::Status PlanOffline(const std::string& path) {
  tandem::v1::SavedProfile saved;
  RETURN_IF_ERROR(ReadTextProtoFile(path, &saved));
  PlannerInput input;
  input.config = &saved.config();
  input.edge = &saved.edge();
  input.cloud = saved.has_cloud() ? &saved.cloud() : nullptr;
  input.cloud_speedup =
      saved.assumed_cloud_speedup() > 0 ? saved.assumed_cloud_speedup() : 1;
  input.cloud_queue_ms = saved.cloud_queue_ms();
  input.network = saved.network();
  input.energy.device = {saved.compute_w(), saved.idle_w()};
  input.energy.radio = {saved.radio_alpha_mw_per_mbit(), saved.radio_beta_mw()};
  if (!absl::GetFlag(FLAGS_link).empty()) {
    ASSIGN_OR_RETURN(input.energy.radio,
                     RadioPowerPreset(absl::GetFlag(FLAGS_link)));
    input.network.set_link_type(absl::GetFlag(FLAGS_link));
  }
  if (!absl::GetFlag(FLAGS_bandwidth).empty()) {
    ASSIGN_OR_RETURN(double mbit, ParseRate(absl::GetFlag(FLAGS_bandwidth)));
    input.network.set_uplink_mbit(mbit);
    input.network.set_measured(false);
  }
  if (!absl::GetFlag(FLAGS_rtt).empty()) {
    ASSIGN_OR_RETURN(double ms, ParseMillis(absl::GetFlag(FLAGS_rtt)));
    input.network.set_rtt_ms(ms);
  }
  PlanConstraints constraints;
  constraints.explain = true;
  ASSIGN_OR_RETURN(constraints.objective, ObjectiveFromFlags());
  if (absl::GetFlag(FLAGS_plan_deadline_ms) > 0) {
    constraints.deadline =
        absl::Milliseconds(absl::GetFlag(FLAGS_plan_deadline_ms));
  }
  constraints.min_accuracy = absl::GetFlag(FLAGS_plan_min_accuracy) > 0
                                 ? absl::GetFlag(FLAGS_plan_min_accuracy)
                                 : saved.config().cascade_test_accuracy();
  ASSIGN_OR_RETURN(tandem::v1::Plan plan, ChoosePlan(input, constraints));
  return Print(plan);
}

absl::Status PlanLive() {
  ASSIGN_OR_RETURN(const std::unique_ptr<Client> client, ConnectFromFlags());
  tandem::v1::GetPlanRequest request;
  request.set_model_name(absl::GetFlag(FLAGS_model));
  request.set_explain(true);
  if (!absl::GetFlag(FLAGS_bandwidth).empty() ||
      !absl::GetFlag(FLAGS_rtt).empty()) {
    // Unset values come from the agent's own estimates.
    ASSIGN_OR_RETURN(tandem::v1::SavedProfile saved,
                     client->GetProfile(request.model_name()));
    *request.mutable_network() = saved.network();
    if (!absl::GetFlag(FLAGS_bandwidth).empty()) {
      ASSIGN_OR_RETURN(double mbit, ParseRate(absl::GetFlag(FLAGS_bandwidth)));
      request.mutable_network()->set_uplink_mbit(mbit);
    }
    if (!absl::GetFlag(FLAGS_rtt).empty()) {
      ASSIGN_OR_RETURN(double ms, ParseMillis(absl::GetFlag(FLAGS_rtt)));
      request.mutable_network()->set_rtt_ms(ms);
    }
  }
  if (!absl::GetFlag(FLAGS_objective).empty()) {
    ASSIGN_OR_RETURN(tandem::v1::Objective objective, ObjectiveFromFlags());
    request.set_objective(objective);
  }
  if (absl::GetFlag(FLAGS_plan_deadline_ms) > 0) {
    request.set_deadline_ms(absl::GetFlag(FLAGS_plan_deadline_ms));
  }
  if (absl::GetFlag(FLAGS_plan_min_accuracy) > 0) {
    request.set_min_accuracy(
        static_cast<float>(absl::GetFlag(FLAGS_plan_min_accuracy)));
  }
  ASSIGN_OR_RETURN(tandem::v1::Plan plan, client->GetPlan(request));
  return Print(plan);
}

}  // namespace

absl::StatusOr<double> ParseRate(const std::string& text) {
  return ParseNumberWithUnits(text, {{"mbit/s", 1},
                                     {"mbps", 1},
                                     {"mbit", 1},
                                     {"kbit/s", 1e-3},
                                     {"kbps", 1e-3},
                                     {"kbit", 1e-3},
                                     {"gbit", 1e3}});
}

absl::StatusOr<double> ParseMillis(const std::string& text) {
  return ParseNumberWithUnits(text, {{"ms", 1}, {"us", 1e-3}, {"s", 1e3}});
}

std::string FormatPlanTable(const tandem::v1::Plan& plan) {
  std::vector<int> order(plan.alternatives_size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const auto& x = plan.alternatives(a);
    const auto& y = plan.alternatives(b);
    if (x.rejected_because().empty() != y.rejected_because().empty()) {
      return x.rejected_because().empty();
    }
    return Metric(x, plan.objective()) < Metric(y, plan.objective());
  });
  std::string out = absl::StrFormat(
      "model %s, uplink %.3g Mbit/s, rtt %.3g ms (%s), link %s\n\n",
      plan.model_name(), plan.network().uplink_mbit(), plan.network().rtt_ms(),
      plan.network().measured() ? "measured" : "assumed",
      plan.network().link_type().empty() ? "wifi" : plan.network().link_type());
  absl::StrAppend(
      &out, absl::StrFormat("  %5s %-9s %-5s %9s %9s %9s %9s %9s %9s %8s  %s\n",
                            "split", "exits", "codec", "edge ms", "xfer ms",
                            "cloud ms", "mean ms", "tail ms", "energy mJ",
                            "accuracy", "status"));
  for (int i : order) {
    const auto& a = plan.alternatives(i);
    absl::StrAppend(
        &out,
        absl::StrFormat(
            "%s %5d %-9s %-5s %9.3f %9.3f %9.3f %9.3f %9.3f %9.2f %8.4f  %s\n",
            i == plan.chosen() ? ">" : " ", a.split_point(), ExitsText(a),
            EncodingText(a), a.edge_ms(), a.transfer_ms(), a.cloud_ms(),
            a.latency_ms(), a.tail_ms(), a.energy_mj(), a.accuracy(),
            i == plan.chosen()             ? "CHOSEN"
            : a.rejected_because().empty() ? "ok"
                                           : a.rejected_because()));
  }
  absl::StrAppend(&out, "\nchosen: ", plan.reason(), "\n",
                  plan.energy_measured()
                      ? "energy: measured\n"
                      : "energy: modelled (no power meter read)\n");
  return out;
}

absl::Status RunPlanCommandFromFlags() {
  if (absl::GetFlag(FLAGS_model).empty() &&
      absl::GetFlag(FLAGS_profile).empty()) {
    return absl::InvalidArgumentError(
        "--model (with --edge) or --profile is required");
  }
  if (!absl::GetFlag(FLAGS_profile).empty())
    return PlanOffline(absl::GetFlag(FLAGS_profile));
  return PlanLive();
}

absl::Status RunProfileCommandFromFlags() {
  const std::string model = absl::GetFlag(FLAGS_model);
  if (model.empty()) return absl::InvalidArgumentError("--model is required");
  ASSIGN_OR_RETURN(const std::unique_ptr<Client> client, ConnectFromFlags());
  ASSIGN_OR_RETURN(const tandem::v1::SavedProfile saved,
                   client->GetProfile(model));
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(saved, &text)) {
    return absl::InternalError("cannot print the profile");
  }
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::cout << text;
    return absl::OkStatus();
  }
  std::ofstream file(out);
  file << text;
  if (!file) return absl::UnavailableError(absl::StrCat("cannot write ", out));
  std::cerr << "saved the profile of " << model << " to " << out << "\n";
  return absl::OkStatus();
}

}  // namespace tandem
