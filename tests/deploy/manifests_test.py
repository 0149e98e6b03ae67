#!/usr/bin/python3
"""Checks that the deployment artefacts agree with each other and the server.

    /usr/bin/python3 tests/deploy/manifests_test.py [SOURCE_DIR] [unittest flags]

Parses every *.yaml under SOURCE_DIR/deploy/k8s (all documents of each file)
and SOURCE_DIR/deploy/docker/Dockerfile.cloud, and checks the properties a
cluster would only reveal at run time: probes on the wrong port, a UID the
image does not have, a Service or PDB that selects no pods, an HPA aimed at
the wrong object, a scrape annotation on the wrong port, a grace period that
cuts the drain short, an ENTRYPOINT that listens on a port it does not
EXPOSE. No cluster, no container engine: Debian's python3-yaml only.

SOURCE_DIR defaults to the repository holding this file. Exits 0 when every
check passes, 1 otherwise (ctest: `manifests_test`).
"""

import glob
import json
import os
import re
import shlex
import sys
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", ".."))

# The custom metric prometheus-adapter serves (rule in cloud-hpa.yaml).
HPA_METRIC = "tandem_cloud_queue_duration_us_per_request"
# tandem-cloud's --drain_timeout_ms when not given (cloud/cloud_main.cc).
DEFAULT_DRAIN_TIMEOUT_MS = 10000
PROBES = {  # probe -> grpc.health.v1 service it must ask about
    "startupProbe": "readiness",
    "readinessProbe": "readiness",
    "livenessProbe": "liveness",
}


# ---------------------------------------------------------------------------
# Loading.

def load_manifests(source_dir):
    """Returns [(path, index, document)] for every non-empty YAML document."""
    k8s_dir = os.path.join(source_dir, "deploy", "k8s")
    paths = sorted(glob.glob(os.path.join(k8s_dir, "**", "*.yaml"), recursive=True)
                   + glob.glob(os.path.join(k8s_dir, "**", "*.yml"), recursive=True))
    docs = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for index, doc in enumerate(yaml.safe_load_all(f)):
                if doc is not None:
                    docs.append((os.path.relpath(path, source_dir), index, doc))
    return docs


def parse_dockerfile(path):
    """Returns the Dockerfile as a list of stages.

    Each stage is a dict: name, base (FROM with global ARGs substituted) and
    instructions [(INSTRUCTION, arguments)]. Comment lines are dropped and
    backslash continuations joined, as Docker does.
    """
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    instructions, current = [], ""
    for line in lines:
        if line.lstrip().startswith("#"):
            continue  # Comments (and parser directives), even inside a RUN.
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            keyword, _, rest = current.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
        current = ""

    global_args, stages = {}, []
    for keyword, rest in instructions:
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            global_args[name.strip()] = default.strip().strip('"')
        elif keyword == "FROM":
            words = rest.split()
            words = [w for w in words if not w.startswith("--platform")]
            base = re.sub(r"\$\{?(\w+)\}?",
                          lambda m: global_args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append({"name": name, "base": base, "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((keyword, rest))
    return stages


def port_of(address):
    """'0.0.0.0:8500' or '[::]:8500' -> 8500."""
    return int(address.rsplit(":", 1)[1])


def flag_values(argv):
    """--name=value flags -> {name: value}; a later flag wins, as in absl."""
    flags = {}
    for arg in argv:
        m = re.fullmatch(r"--?([\w-]+)=(.*)", arg)
        if m:
            flags[m.group(1).replace("-", "_")] = m.group(2)
    return flags


# ---------------------------------------------------------------------------
# Tests.

class ManifestsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.docs = load_manifests(SOURCE_DIR)
        cls.stages = parse_dockerfile(
            os.path.join(SOURCE_DIR, "deploy", "docker", "Dockerfile.cloud"))

    # Helpers ----------------------------------------------------------------

    def only(self, kind):
        found = [doc for _, _, doc in self.docs if doc.get("kind") == kind]
        self.assertEqual(len(found), 1, f"expected exactly one {kind}, found {len(found)}")
        return found[0]

    def deployment(self):
        return self.only("Deployment")

    def pod_spec(self):
        return self.deployment()["spec"]["template"]["spec"]

    def pod_labels(self):
        return self.deployment()["spec"]["template"]["metadata"]["labels"]

    def container(self):
        containers = self.pod_spec()["containers"]
        self.assertEqual(len(containers), 1, "the Deployment should run one container")
        return containers[0]

    def container_ports(self):
        """{name: containerPort} of the container."""
        ports = {}
        for port in self.container().get("ports", []):
            self.assertIn("name", port, f"unnamed container port {port}")
            ports[port["name"]] = port["containerPort"]
        return ports

    def runtime_stage(self):
        self.assertGreaterEqual(len(self.stages), 1, "Dockerfile.cloud has no FROM")
        return self.stages[-1]  # The image that ships is the last stage.

    def runtime(self, keyword):
        return [rest for k, rest in self.runtime_stage()["instructions"] if k == keyword]

    def entrypoint_flags(self):
        entrypoints = self.runtime("ENTRYPOINT")
        self.assertTrue(entrypoints, "the runtime stage has no ENTRYPOINT")
        try:
            argv = json.loads(entrypoints[-1])
        except json.JSONDecodeError:
            self.fail("ENTRYPOINT should be in exec form (a JSON array), so that "
                      "the server is PID 1 and gets SIGTERM: " + entrypoints[-1])
        return flag_values(argv[1:])

    def effective_flags(self):
        """The server's flags in the pod: ENTRYPOINT's, then the container's args."""
        flags = self.entrypoint_flags()
        flags.update(flag_values(self.container().get("args", [])))
        return flags

    def dockerfile_uid(self):
        for run in self.runtime("RUN"):
            m = re.search(r"\buseradd\b.*?--uid[= ](\d+)", run)
            if m:
                return int(m.group(1))
        self.fail("no `useradd --uid N` in the runtime stage of Dockerfile.cloud")

    def assertSubset(self, selector, labels, what):
        self.assertTrue(selector, f"{what}: empty selector (it would select everything)")
        missing = {k: v for k, v in selector.items() if labels.get(k) != v}
        self.assertFalse(missing, f"{what} {selector} does not match the pod labels "
                                  f"{labels}: {missing}")

    # Every document -----------------------------------------------------------

    def test_manifests_found(self):
        self.assertTrue(self.docs, "no YAML documents under deploy/k8s")

    def test_every_document_is_identified(self):
        for path, index, doc in self.docs:
            where = f"{path} document {index}"
            self.assertIsInstance(doc, dict, where)
            for key in ("apiVersion", "kind"):
                self.assertTrue(isinstance(doc.get(key), str) and doc[key], f"{where}: no {key}")
            metadata = doc.get("metadata") or {}
            for key in ("name", "namespace"):
                self.assertTrue(isinstance(metadata.get(key), str) and metadata[key],
                                f"{where} ({doc.get('kind')}): no metadata.{key}")

    def test_one_namespace(self):
        namespaces = {doc.get("metadata", {}).get("namespace") for _, _, doc in self.docs}
        self.assertEqual(len(namespaces), 1,
                         f"the objects must share a namespace to find each other: {namespaces}")

    def test_labels_and_annotations_are_strings(self):
        # The API server rejects a label or annotation value that YAML reads as
        # a number or a boolean (prometheus.io/port: 8502 without quotes).
        for path, index, doc in self.docs:
            metadatas = [doc.get("metadata", {})]
            template = (doc.get("spec") or {}).get("template")
            if isinstance(template, dict):
                metadatas.append(template.get("metadata", {}))
            for metadata in metadatas:
                for field in ("labels", "annotations"):
                    for key, value in (metadata.get(field) or {}).items():
                        self.assertIsInstance(value, str,
                                              f"{path} document {index}: {field} {key}={value!r}")

    # Deployment ---------------------------------------------------------------

    def test_deployment_selector_matches_its_pods(self):
        self.assertSubset(self.deployment()["spec"]["selector"]["matchLabels"],
                          self.pod_labels(), "Deployment selector")

    def test_grpc_probes_on_grpc_port(self):
        grpc_port = self.container_ports().get("grpc")
        self.assertIsInstance(grpc_port, int, "no container port named grpc")
        for probe, service in PROBES.items():
            spec = self.container().get(probe)
            self.assertIsNotNone(spec, f"no {probe}")
            self.assertIn("grpc", spec, f"{probe} is not a gRPC probe")
            port = spec["grpc"].get("port")
            # Kubernetes accepts only a number here, not a port name.
            self.assertIsInstance(port, int, f"{probe}: grpc.port must be a number")
            self.assertEqual(port, grpc_port, f"{probe} probes port {port}, not grpc")
            self.assertEqual(spec["grpc"].get("service"), service, f"{probe}: health service")

    def test_container_ports_are_where_the_server_listens(self):
        flags = self.effective_flags()
        ports = self.container_ports()
        self.assertIn("listen", flags, "the server gets no --listen")
        self.assertEqual(port_of(flags["listen"]), ports.get("grpc"),
                         f"--listen={flags['listen']} vs container port grpc")
        self.assertIn("metrics_listen", flags, "the server gets no --metrics_listen")
        self.assertEqual(port_of(flags["metrics_listen"]), ports.get("metrics"),
                         f"--metrics_listen={flags['metrics_listen']} vs container port metrics")

    def test_runs_as_the_images_non_root_user(self):
        pod = self.pod_spec().get("securityContext") or {}
        container = self.container().get("securityContext") or {}
        effective = dict(pod, **container)  # The container's settings win.
        self.assertIs(effective.get("runAsNonRoot"), True, "runAsNonRoot is not true")
        uid = effective.get("runAsUser")
        # runAsNonRoot can verify only a numeric UID.
        self.assertIsInstance(uid, int, "runAsUser must be a number")
        self.assertNotEqual(uid, 0)
        self.assertEqual(uid, self.dockerfile_uid(), "runAsUser vs the image's useradd --uid")

    def test_max_connection_age_passed(self):
        # Without it clients never re-resolve DNS and new replicas stay idle.
        age = self.effective_flags().get("max_connection_age_s")
        self.assertIsNotNone(age, "the Deployment does not pass --max_connection_age_s")
        self.assertGreater(int(age), 0, "--max_connection_age_s must be > 0")

    def test_prometheus_scrapes_the_metrics_port(self):
        annotations = self.deployment()["spec"]["template"]["metadata"].get("annotations") or {}
        self.assertEqual(annotations.get("prometheus.io/scrape"), "true")
        metrics_port = self.container_ports().get("metrics")
        self.assertIsNotNone(metrics_port, "no container port named metrics")
        self.assertEqual(annotations.get("prometheus.io/port"), str(metrics_port),
                         "prometheus.io/port vs container port metrics")
        self.assertEqual(annotations.get("prometheus.io/path", "/metrics"), "/metrics")

    def test_grace_period_covers_prestop_and_drain(self):
        grace = self.pod_spec().get("terminationGracePeriodSeconds", 30)
        pre_stop = (self.container().get("lifecycle") or {}).get("preStop") or {}
        if "sleep" in pre_stop:
            sleep_s = float(pre_stop["sleep"]["seconds"])
        elif "exec" in pre_stop:
            command = pre_stop["exec"]["command"]
            if len(command) == 3 and command[0] in ("/bin/sh", "sh"):
                command = shlex.split(command[2])
            self.assertTrue(command and command[0].endswith("sleep"),
                            f"preStop is not a sleep: {command}")
            sleep_s = float(command[1])
        else:
            sleep_s = 0.0
        drain_ms = int(self.effective_flags().get("drain_timeout_ms", DEFAULT_DRAIN_TIMEOUT_MS))
        self.assertGreater(grace, sleep_s + drain_ms / 1000,
                           f"terminationGracePeriodSeconds {grace} <= preStop {sleep_s} s "
                           f"+ drain {drain_ms} ms: SIGKILL would cut the drain short")

    # Service, HPA, PDB --------------------------------------------------------

    def test_service_is_headless_and_selects_the_pods(self):
        spec = self.only("Service")["spec"]
        # gRPC balances per call only across pod IPs; a VIP pins each client.
        self.assertEqual(spec.get("clusterIP"), "None", "the Service must be headless")
        self.assertSubset(spec.get("selector"), self.pod_labels(), "Service selector")

    def test_service_ports_are_container_ports(self):
        ports = self.container_ports()
        service_ports = self.only("Service")["spec"].get("ports", [])
        self.assertTrue(service_ports, "the Service has no ports")
        by_number = {number: name for name, number in ports.items()}
        for port in service_ports:
            target = port.get("targetPort", port["port"])
            number = ports.get(target) if isinstance(target, str) else target
            self.assertIn(number, by_number, f"Service port {port} targets no container port")
            self.assertEqual(port.get("name"), by_number[number],
                             f"Service port {port} is named unlike its container port")
            # Headless: clients dial the pod directly, nothing remaps ports.
            self.assertEqual(port["port"], number, f"Service port {port}: port != containerPort")

    def test_hpa_scales_the_deployment_on_queue_time(self):
        spec = self.only("HorizontalPodAutoscaler")["spec"]
        target = spec["scaleTargetRef"]
        self.assertEqual(target.get("kind"), "Deployment")
        self.assertEqual(target.get("apiVersion"), "apps/v1")
        self.assertEqual(target.get("name"), self.deployment()["metadata"]["name"])
        names = [m["pods"]["metric"]["name"] for m in spec.get("metrics", [])
                 if m.get("type") == "Pods"]
        self.assertEqual(names, [HPA_METRIC])

    def test_pdb_selects_the_pods(self):
        self.assertSubset(self.only("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                          self.pod_labels(), "PodDisruptionBudget selector")

    # Dockerfile ---------------------------------------------------------------

    def test_dockerfile_is_multi_stage_on_debian_12(self):
        names = [stage["name"] for stage in self.stages]
        self.assertIn("build", names, "no `FROM ... AS build` stage")
        runtime = self.runtime_stage()
        self.assertNotEqual(runtime["name"], "build", "the image that ships is the build stage")
        self.assertRegex(runtime["base"], r"^(docker\.io/)?(library/)?debian:(12|bookworm)\b",
                         "the runtime stage is not Debian 12 (its packages are bookworm's)")
        self.assertTrue(any(k == "COPY" and "--from=build" in rest
                            for k, rest in runtime["instructions"]),
                        "the runtime stage copies nothing from the build stage")

    def test_dockerfile_runs_as_non_root(self):
        users = self.runtime("USER")
        self.assertTrue(users, "no USER in the runtime stage: the server would run as root")
        user = users[-1].split(":")[0]
        self.assertNotIn(user, ("root", "0"))
        # Numeric, so that Kubernetes' runAsNonRoot can check it.
        self.assertRegex(user, r"^\d+$", "USER should be numeric")
        self.assertEqual(int(user), self.dockerfile_uid(), "USER vs useradd --uid")

    def test_entrypoint_ports_are_exposed(self):
        flags = self.entrypoint_flags()
        for flag in ("listen", "metrics_listen"):
            self.assertIn(flag, flags, f"ENTRYPOINT has no --{flag}")
        exposed = set()
        for rest in self.runtime("EXPOSE"):
            exposed.update(int(word.split("/")[0]) for word in rest.split())
        self.assertEqual(exposed, {port_of(flags["listen"]), port_of(flags["metrics_listen"])},
                         "EXPOSEd ports vs ENTRYPOINT's --listen and --metrics_listen")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and not args[0].startswith("-"):
        SOURCE_DIR = os.path.abspath(args.pop(0))
    unittest.main(argv=[sys.argv[0], "-v"] + args)
