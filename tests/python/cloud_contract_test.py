#!/usr/bin/python3
"""Wire-contract test of tandem-cloud with an independent client (plain grpcio).

    /usr/bin/python3 tests/python/cloud_contract_test.py \
        --cloud_binary build/cloud/tandem-cloud \
        --model_repository build/model_repository \
        --proto_dir proto [--data_dir /usr/share/datasets/fashion-mnist]

Proves that the contract in proto/tandem/v1/ works outside our C++ SDK: the
Python stubs are generated here, at run time, from the .proto files (ours plus
the standard health.proto and reflection.proto in tests/proto) with
protoc and grpc_python_plugin; nothing from the C++ build is reused except
the server binary and the model repository.

Starts the real server on 127.0.0.1:0 with a --port_file, then checks health,
reflection, Continue on real Fashion-MNIST test images, ContinueStream, Probe,
GetProfile, the error codes of the contract, and a graceful SIGTERM. Prints
one line per check and a last line `N passed, M failed`; exits 1 if any check
failed, 77 (ctest's skip code) when the server binary or Python's grpc module
is missing.

Use Debian's /usr/bin/python3 (python3-grpcio, python3-protobuf, numpy).
"""

import argparse
import glob
import gzip
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = "fmnist_branchy"
CAMERA_MODEL = "camera_branchy"  # Heavy: used where a request must take > 1 ms.
NUM_IMAGES = 50
MIN_ACCURACY = 0.85
RPC_TIMEOUT_S = 30.0
# The server runs with this message limit, so the oversize check can be small.
MAX_MESSAGE_BYTES = 1 << 20


# ---------------------------------------------------------------------------
# Stub generation (also used by throwaway checks of deploy/config/*.pbtxt).

def find_tool(name):
    path = shutil.which(name) or os.path.join("/usr/bin", name)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def generate_stubs(proto_dir, out_dir, extra_dir=os.path.join(HERE, "..", "proto")):
    """Compiles proto_dir/tandem/v1/*.proto and extra_dir/{health,reflection}.proto
    into Python modules under out_dir and puts out_dir first on sys.path.

    Raises RuntimeError with protoc's output when compilation fails."""
    protoc = find_tool("protoc")
    plugin = find_tool("grpc_python_plugin")
    if not protoc or not plugin:
        raise RuntimeError("protoc and grpc_python_plugin are needed "
                           "(Debian: protobuf-compiler, protobuf-compiler-grpc)")
    ours = sorted(os.path.relpath(p, proto_dir)
                  for p in glob.glob(os.path.join(proto_dir, "tandem", "v1", "*.proto")))
    if not ours:
        raise RuntimeError(f"no tandem/v1/*.proto under {proto_dir}")
    extra = [p for p in ("health.proto", "reflection.proto")
             if os.path.isfile(os.path.join(extra_dir, p))]
    os.makedirs(out_dir, exist_ok=True)
    cmd = [protoc, f"--proto_path={proto_dir}", f"--proto_path={extra_dir}",
           f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
           f"--plugin=protoc-gen-grpc_python={plugin}"] + ours + extra
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"protoc failed ({res.returncode}): {res.stderr.strip()}")
    # Regular packages (not namespace packages), so that no other `tandem` on
    # sys.path can take precedence over the generated one.
    for d in ("tandem", os.path.join("tandem", "v1")):
        open(os.path.join(out_dir, d, "__init__.py"), "a").close()
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)


# ---------------------------------------------------------------------------
# Data.

def read_idx(path, magic_expected, ndim):
    with gzip.open(path, "rb") as f:
        data = f.read()
    header = 4 + 4 * ndim
    magic, *dims = struct.unpack(">" + "I" * (1 + ndim), data[:header])
    if magic != magic_expected:
        raise ValueError(f"{path}: magic {magic}, expected {magic_expected}")
    import numpy as np
    arr = np.frombuffer(data, dtype=np.uint8, offset=header)
    expected = 1
    for d in dims:
        expected *= d
    if arr.size != expected:
        raise ValueError(f"{path}: {arr.size} values, header says {dims}")
    return arr.reshape(dims)


def load_test_images(data_dir, count):
    images = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"), 2051, 3)
    labels = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz"), 2049, 1)
    if len(images) != len(labels) or len(images) < count:
        raise ValueError(f"{data_dir}: {len(images)} images, {len(labels)} labels")
    return images[:count], labels[:count]


def to_fp32_le(images_u8):
    """[B,H,W] uint8 -> little-endian FP32 bytes of pixel/255, [B,1,H,W] order."""
    import numpy as np
    return (images_u8.astype(np.float32) / np.float32(255.0)).astype("<f4").tobytes()


# ---------------------------------------------------------------------------
# Checks.

class CheckFailed(Exception):
    pass


def require(cond, message):
    if not cond:
        raise CheckFailed(message)


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, fn):
        """Runs fn(); a returned string is printed as detail. Never raises."""
        try:
            detail = fn()
        except CheckFailed as e:
            self.fail(name, str(e))
            return False
        except Exception as e:  # noqa: BLE001 - every error is a failed check
            import grpc
            if isinstance(e, grpc.RpcError) and hasattr(e, "code"):
                self.fail(name, f"RPC failed: {e.code().name}: {e.details()}")
            else:
                self.fail(name, f"{type(e).__name__}: {e}")
            return False
        self.passed += 1
        print(f"PASS {name}" + (f": {detail}" if detail else ""), flush=True)
        return True

    def fail(self, name, why):
        self.failed += 1
        print(f"FAIL {name}: {why}", flush=True)


def expect_code(grpc, fn, code):
    try:
        fn()
    except grpc.RpcError as e:
        require(e.code() == code,
                f"expected {code.name}, got {e.code().name}: {e.details()}")
        return f"{code.name} ({e.details()})"
    raise CheckFailed(f"expected {code.name}, got OK")


# ---------------------------------------------------------------------------
# The server process.

class CloudProcess:
    def __init__(self, binary, repo, workdir, startup_timeout_s):
        self.port_file = os.path.join(workdir, "cloud.port")
        self.log_path = os.path.join(workdir, "cloud.log")
        self.cmd = [binary, "--listen=127.0.0.1:0", f"--model_repository={repo}",
                    f"--port_file={self.port_file}",
                    f"--max_message_bytes={MAX_MESSAGE_BYTES}"]
        self.startup_timeout_s = startup_timeout_s
        self.proc = None
        self.port = None

    def start(self):
        print("starting: " + " ".join(self.cmd), flush=True)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        t0 = time.monotonic()
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise CheckFailed(f"tandem-cloud exited with status {rc} before writing "
                                  f"--port_file\n{self.log_tail()}")
            port = self._read_port()
            if port is not None:
                self.port = port
                return time.monotonic() - t0
            if time.monotonic() - t0 > self.startup_timeout_s:
                raise CheckFailed(f"no --port_file after {self.startup_timeout_s:.0f} s"
                                  f"\n{self.log_tail()}")
            time.sleep(0.1)

    def _read_port(self):
        try:
            with open(self.port_file, "r", encoding="ascii") as f:
                text = f.read()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        # Written atomically, but tolerate a writer that is not: wait for the
        # newline before believing it.
        if not text.endswith("\n"):
            return None
        port = int(text.strip())
        if not 0 < port < 65536:
            raise CheckFailed(f"--port_file holds {text!r}")
        return port

    def terminate_and_wait(self, timeout_s):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                tail = f.readlines()[-lines:]
        except OSError:
            return "(no server log)"
        return "---- tandem-cloud log (tail) ----\n" + "".join(tail) + "---- end of log ----"


# ---------------------------------------------------------------------------

def run(args, workdir, report):
    import grpc
    from google.protobuf import descriptor_pb2, text_format

    gen = os.path.join(workdir, "gen")
    generate_stubs(args.proto_dir, gen)
    import health_pb2
    import health_pb2_grpc
    import reflection_pb2
    import reflection_pb2_grpc
    from tandem.v1 import cloud_service_pb2 as cs
    from tandem.v1 import cloud_service_pb2_grpc as cs_grpc
    from tandem.v1 import model_config_pb2
    from tandem.v1 import tensor_pb2

    # The model's shape, blocks and labels, from its config.pbtxt.
    config = model_config_pb2.ModelConfig()
    config_path = os.path.join(args.model_repository, MODEL, "config.pbtxt")
    with open(config_path, "r", encoding="utf-8") as f:
        text_format.Parse(f.read(), config)
    final_block = config.num_blocks - 1
    dims = list(config.input.dims)
    early_exits = [e.block for e in config.exits if e.block != final_block]
    print(f"model {config.name}: {config.num_blocks} blocks, exits "
          f"{[e.block for e in config.exits]}, input {config.input.datatype} {dims}, "
          f"{len(config.labels)} labels", flush=True)

    images, labels = load_test_images(args.data_dir, NUM_IMAGES)
    require(list(images.shape[1:]) == dims[1:] and dims[0] == 1,
            f"config input dims {dims} do not fit {images.shape[1:]} images")
    sample_bytes = 4
    for d in dims:
        sample_bytes *= d

    def continue_request(pixels_u8=None, *, id="", model=MODEL, datatype="FP32",
                         shape=None, payload=None, top_k=1, thresholds=None):
        if payload is None:
            payload = to_fp32_le(pixels_u8)
        if shape is None:
            shape = [len(payload) // sample_bytes] + dims
        spec = tensor_pb2.TensorSpec(name=config.input.name, datatype=datatype, shape=shape,
                                     encoding=tensor_pb2.ENCODING_RAW,
                                     compression=tensor_pb2.COMPRESSION_NONE,
                                     encoded_bytes=len(payload))
        req = cs.ContinueRequest(model_name=model, id=id, start_block=0, top_k=top_k,
                                 inputs=[spec], raw_input_contents=[payload])
        for block, t in (thresholds or {}).items():
            req.exit_thresholds[block] = t
        return req

    cloud = CloudProcess(args.cloud_binary, args.model_repository, workdir,
                         args.startup_timeout_s)
    try:
        started = {}

        def start():
            started["s"] = cloud.start()
            return f"port {cloud.port} after {started['s']:.1f} s"
        if not report.check("server starts and writes --port_file", start):
            return

        channel = grpc.insecure_channel(
            f"127.0.0.1:{cloud.port}",
            options=[("grpc.max_send_message_length", 64 << 20),
                     ("grpc.max_receive_message_length", 64 << 20)])
        grpc.channel_ready_future(channel).result(timeout=10)
        health = health_pb2_grpc.HealthStub(channel)
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        stub = cs_grpc.CloudServiceStub(channel)
        SERVING = health_pb2.HealthCheckResponse.SERVING

        # ---- Health.
        for service in ("", "tandem.v1.CloudService", "liveness", "readiness"):
            def health_check(service=service):
                r = health.Check(health_pb2.HealthCheckRequest(service=service),
                                 timeout=RPC_TIMEOUT_S)
                name = health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)
                require(r.status == SERVING, f"status {name}")
                return name
            report.check(f"health Check {service!r} is SERVING", health_check)

        report.check("health Check of an unknown service is NOT_FOUND", lambda: expect_code(
            grpc, lambda: health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"),
                                       timeout=RPC_TIMEOUT_S),
            grpc.StatusCode.NOT_FOUND))

        def health_watch():
            stream = health.Watch(health_pb2.HealthCheckRequest(service="readiness"),
                                  timeout=RPC_TIMEOUT_S)
            try:
                first = next(stream)
            finally:
                stream.cancel()
            require(first.status == SERVING, f"first Watch message: {first.status}")
            return "SERVING"
        report.check("health Watch 'readiness' starts with SERVING", health_watch)

        # ---- Reflection.
        def reflection_check():
            reqs = [reflection_pb2.ServerReflectionRequest(list_services="*"),
                    reflection_pb2.ServerReflectionRequest(
                        file_containing_symbol="tandem.v1.CloudService")]
            resps = list(reflection.ServerReflectionInfo(iter(reqs), timeout=RPC_TIMEOUT_S))
            require(len(resps) == 2, f"{len(resps)} responses to 2 requests")
            require(resps[0].WhichOneof("message_response") == "list_services_response",
                    f"list_services answered with {resps[0].WhichOneof('message_response')}")
            names = sorted(s.name for s in resps[0].list_services_response.service)
            require("tandem.v1.CloudService" in names,
                    f"tandem.v1.CloudService not in {names}")
            require(resps[1].WhichOneof("message_response") == "file_descriptor_response",
                    f"file_containing_symbol answered with "
                    f"{resps[1].WhichOneof('message_response')}: {resps[1].error_response}")
            served = None
            for blob in resps[1].file_descriptor_response.file_descriptor_proto:
                fd = descriptor_pb2.FileDescriptorProto.FromString(blob)
                for svc in fd.service:
                    if fd.package == "tandem.v1" and svc.name == "CloudService":
                        served = sorted(m.name for m in svc.method)
            ours = sorted(m.name for m in
                          cs.DESCRIPTOR.services_by_name["CloudService"].methods)
            require(served is not None, "no CloudService in the descriptors served")
            require(served == ours, f"served methods {served} != ours {ours}")
            return f"services {names}; CloudService methods {served}"
        report.check("reflection lists tandem.v1.CloudService and serves its schema",
                     reflection_check)

        # ---- Continue on real images.
        answers = []  # (index, probability) of top-1 per image, or None.
        rpc_errors = []
        wrong_exit = []
        rtts, computes, queues = [], [], []
        for i in range(NUM_IMAGES):
            req = continue_request(images[i:i + 1], id=f"img-{i}", top_k=1)
            t0 = time.monotonic()
            try:
                r = stub.Continue(req, timeout=RPC_TIMEOUT_S)
            except grpc.RpcError as e:
                rpc_errors.append(f"#{i}: {e.code().name}: {e.details()}")
                answers.append(None)
                continue
            rtts.append((time.monotonic() - t0) * 1e6)
            computes.append(r.compute_us)
            queues.append(r.queue_us)
            if r.exit_block != final_block:
                wrong_exit.append(f"#{i}: exit_block {r.exit_block}")
            answers.append((r.top_k[0].index, r.top_k[0].probability) if r.top_k else None)

        def continue_ok():
            require(not rpc_errors, f"{len(rpc_errors)} of {NUM_IMAGES} failed: "
                    + "; ".join(rpc_errors[:3]))
            missing = sum(1 for a in answers if a is None)
            require(missing == 0, f"{missing} responses without top_k")
            require(not wrong_exit, f"expected exit_block {final_block} (no thresholds "
                    "sent: only the final exit answers); " + "; ".join(wrong_exit[:3]))
            return (f"{NUM_IMAGES} requests, exit_block {final_block}; median round trip "
                    f"{statistics.median(rtts):.0f} us, compute {statistics.median(computes):.0f}"
                    f" us, queue {statistics.median(queues):.0f} us")
        report.check(f"Continue start_block=0 on {NUM_IMAGES} test images answers at the "
                     "final exit", continue_ok)

        def accuracy():
            correct = sum(1 for a, y in zip(answers, labels) if a is not None and a[0] == y)
            acc = correct / NUM_IMAGES
            require(acc >= MIN_ACCURACY, f"top-1 accuracy {acc:.2f} < {MIN_ACCURACY}")
            return f"top-1 accuracy {correct}/{NUM_IMAGES} = {acc:.2f}"
        report.check(f"Continue top-1 accuracy >= {MIN_ACCURACY:.2f}", accuracy)

        def response_fields():
            r = stub.Continue(continue_request(images[:1], id="fields-0", top_k=3),
                              timeout=RPC_TIMEOUT_S)
            require(r.id == "fields-0", f"id {r.id!r} not echoed")
            require(len(r.top_k) == 3, f"{len(r.top_k)} classes for top_k=3")
            probs = [c.probability for c in r.top_k]
            require(probs == sorted(probs, reverse=True), f"top_k not descending: {probs}")
            require(all(0.0 <= p <= 1.0 for p in probs) and sum(probs) <= 1.0 + 1e-4,
                    f"probabilities {probs}")
            for c in r.top_k:
                require(0 <= c.index < len(config.labels), f"class index {c.index}")
                require(c.label == config.labels[c.index],
                        f"label {c.label!r} != config label {config.labels[c.index]!r}")
            require(abs(r.confidence - probs[0]) < 1e-4,
                    f"confidence {r.confidence} != top-1 probability {probs[0]}")
            require(r.compute_us > 0 and r.queue_us >= 0,
                    f"compute_us {r.compute_us}, queue_us {r.queue_us}")
            return (f"top-3 {[(c.index, c.label, round(c.probability, 4)) for c in r.top_k]}, "
                    f"confidence {r.confidence:.4f}")
        report.check("Continue echoes id; top_k=3 sorted, labelled, consistent with "
                     "confidence", response_fields)

        if early_exits:
            def early_exit():
                block = early_exits[0]
                r = stub.Continue(continue_request(images[:1], thresholds={block: 0.0}),
                                  timeout=RPC_TIMEOUT_S)
                require(r.exit_block == block,
                        f"threshold 0 at block {block}, but exit_block {r.exit_block}")
                return f"exit_block {r.exit_block}, confidence {r.confidence:.3f}"
            report.check(f"Continue honours exit_thresholds {{{early_exits[0]}: 0.0}}",
                         early_exit)

        # ---- ContinueStream: out-of-order answers matched by id, own status.
        def stream():
            reqs = [continue_request(images[1:2], id="s-1"),
                    continue_request(images[2:3], id="s-bad", model="no_such_model"),
                    continue_request(images[3:4], id="s-3")]
            by_id = {r.id: r for r in stub.ContinueStream(iter(reqs), timeout=RPC_TIMEOUT_S)}
            require(sorted(by_id) == ["s-1", "s-3", "s-bad"], f"ids answered: {sorted(by_id)}")
            for rid, img in (("s-1", 1), ("s-3", 3)):
                r = by_id[rid]
                require(r.status_code == 0, f"{rid}: status {r.status_code} {r.status_message}")
                require(r.top_k and answers[img] and r.top_k[0].index == answers[img][0],
                        f"{rid}: top-1 differs from the unary answer")
            bad = by_id["s-bad"]
            require(bad.status_code == grpc.StatusCode.NOT_FOUND.value[0],
                    f"unknown model in stream: status_code {bad.status_code}, expected "
                    f"{grpc.StatusCode.NOT_FOUND.value[0]} (NOT_FOUND)")
            return f"3 responses; bad one: {bad.status_code} {bad.status_message!r}"
        report.check("ContinueStream answers every id, errors in status_code", stream)

        # ---- Probe and GetProfile.
        def probe():
            payload = os.urandom(100_000)
            r = stub.Probe(cs.ProbeRequest(payload=payload, response_bytes=5_000),
                           timeout=RPC_TIMEOUT_S)
            require(r.received_bytes == len(payload),
                    f"received_bytes {r.received_bytes} != {len(payload)}")
            require(len(r.payload) == 5_000, f"{len(r.payload)} bytes back, asked 5000")
            return f"received_bytes {r.received_bytes}, {len(r.payload)} bytes back"
        report.check("Probe echoes the payload size", probe)

        def profile():
            r = stub.GetProfile(cs.GetProfileRequest(model_name=MODEL), timeout=RPC_TIMEOUT_S)
            n = len(r.profile.blocks)
            require(n in (0, config.num_blocks), f"{n} block profiles, model has "
                    f"{config.num_blocks}")
            require(r.queue_depth >= 0 and r.queue_us_ewma >= 0,
                    f"queue_depth {r.queue_depth}, queue_us_ewma {r.queue_us_ewma}")
            return f"{n} block profiles, queue_depth {r.queue_depth}"
        report.check("GetProfile answers", profile)

        # ---- Errors.
        good = to_fp32_le(images[:1])
        report.check("Continue unknown model -> NOT_FOUND", lambda: expect_code(
            grpc, lambda: stub.Continue(continue_request(images[:1], model="no_such_model"),
                                        timeout=RPC_TIMEOUT_S),
            grpc.StatusCode.NOT_FOUND))
        report.check("Continue payload one byte short -> INVALID_ARGUMENT", lambda: expect_code(
            grpc, lambda: stub.Continue(continue_request(payload=good[:-1], shape=[1] + dims),
                                        timeout=RPC_TIMEOUT_S),
            grpc.StatusCode.INVALID_ARGUMENT))
        report.check("Continue datatype FP8 -> INVALID_ARGUMENT", lambda: expect_code(
            grpc, lambda: stub.Continue(continue_request(payload=good, datatype="FP8"),
                                        timeout=RPC_TIMEOUT_S),
            grpc.StatusCode.INVALID_ARGUMENT))
        def wrong_shape():
            # A consistent payload for a shape the model does not take.
            wrong_dims = dims[:-1] + [dims[-1] + 1]
            n = 4
            for d in wrong_dims:
                n *= d
            req = continue_request(payload=b"\0" * n, shape=[1] + wrong_dims)
            return expect_code(grpc, lambda: stub.Continue(req, timeout=RPC_TIMEOUT_S),
                               grpc.StatusCode.INVALID_ARGUMENT)
        report.check("Continue wrong shape -> INVALID_ARGUMENT", wrong_shape)

        def no_inputs():
            req = cs.ContinueRequest(model_name=MODEL, start_block=0)
            return expect_code(grpc, lambda: stub.Continue(req, timeout=RPC_TIMEOUT_S),
                               grpc.StatusCode.INVALID_ARGUMENT)
        report.check("Continue without inputs -> INVALID_ARGUMENT", no_inputs)

        def oversize():
            batch = (2 * MAX_MESSAGE_BYTES) // sample_bytes + 1
            big = continue_request(payload=b"\0" * (batch * sample_bytes))
            return expect_code(grpc, lambda: stub.Continue(big, timeout=RPC_TIMEOUT_S),
                               grpc.StatusCode.RESOURCE_EXHAUSTED)
        report.check(f"Continue over --max_message_bytes={MAX_MESSAGE_BYTES} -> "
                     "RESOURCE_EXHAUSTED", oversize)
        def expired_deadline():
            # gRPC sends the remaining time rounded up (to ~1 ms here) and does
            # not fail an expired call before sending it, so a request the
            # server can answer within ~1 ms may legitimately succeed. Use the
            # heavy camera model (a ResNet-18-sized forward pass, well over
            # 1 ms) when the repository has it, so the only correct outcome is
            # DEADLINE_EXCEEDED, whether the server checks the deadline before
            # running or the call expires while it runs.
            req = continue_request(images[:1])
            camera_path = os.path.join(args.model_repository, CAMERA_MODEL, "config.pbtxt")
            what = MODEL
            if os.path.isfile(camera_path):
                camera = model_config_pb2.ModelConfig()
                with open(camera_path, "r", encoding="utf-8") as f:
                    text_format.Parse(f.read(), camera)
                n = 4
                for d in camera.input.dims:
                    n *= d
                if camera.input.datatype == "FP32" and n + 4096 < MAX_MESSAGE_BYTES:
                    spec = tensor_pb2.TensorSpec(name=camera.input.name, datatype="FP32",
                                                 shape=[1] + list(camera.input.dims),
                                                 encoded_bytes=n)
                    req = cs.ContinueRequest(model_name=CAMERA_MODEL, start_block=0, top_k=1,
                                             inputs=[spec], raw_input_contents=[b"\0" * n])
                    what = CAMERA_MODEL
            detail = expect_code(grpc, lambda: stub.Continue(req, timeout=0.000001),
                                 grpc.StatusCode.DEADLINE_EXCEEDED)
            return f"{what}: {detail}"
        report.check("Continue with an expired deadline (timeout 1 us) -> DEADLINE_EXCEEDED",
                     expired_deadline)

        # ---- Still healthy after the bad requests.
        def still_good():
            r = stub.Continue(continue_request(images[:1], id="after"), timeout=RPC_TIMEOUT_S)
            require(r.top_k, "no top_k")
            require(answers[0] is not None, "the first answer for image 0 failed")
            require(r.top_k[0].index == answers[0][0]
                    and abs(r.top_k[0].probability - answers[0][1]) < 1e-4,
                    f"answer changed: {(r.top_k[0].index, r.top_k[0].probability)} vs "
                    f"{answers[0]}")
            r = health.Check(health_pb2.HealthCheckRequest(service="readiness"),
                             timeout=RPC_TIMEOUT_S)
            require(r.status == SERVING, f"readiness {r.status}")
            return "same answer as before, readiness SERVING"
        report.check("server still answers correctly after the bad requests", still_good)

        channel.close()

        # ---- Graceful stop.
        def sigterm():
            t0 = time.monotonic()
            rc = cloud.terminate_and_wait(10.0)
            require(rc is not None, "still running 10 s after SIGTERM")
            require(rc == 0, f"exit status {rc} after SIGTERM")
            return f"exit 0 after {time.monotonic() - t0:.2f} s"
        report.check("SIGTERM: exits 0 within 10 s", sigterm)
    finally:
        if report.failed and cloud.port is not None:
            print(cloud.log_tail(), file=sys.stderr, flush=True)
        cloud.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cloud_binary", required=True)
    parser.add_argument("--model_repository", required=True)
    parser.add_argument("--proto_dir", required=True, help="the repository's proto/ folder")
    parser.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--startup_timeout_s", type=float, default=180.0,
                        help="how long to wait for --port_file (model load and warm-up)")
    parser.add_argument("--keep_temp", action="store_true",
                        help="keep the temp dir (stubs, server log)")
    args = parser.parse_args()

    if not (os.path.isfile(args.cloud_binary) and os.access(args.cloud_binary, os.X_OK)):
        print(f"SKIP: cloud binary {args.cloud_binary} does not exist or is not executable "
              "(build the tandem-cloud target first)", flush=True)
        return SKIP
    try:
        import grpc  # noqa: F401
        import numpy  # noqa: F401
        from google.protobuf import text_format  # noqa: F401
    except ImportError as e:
        print(f"SKIP: {e} -- run with Debian's /usr/bin/python3 "
              "(python3-grpcio, python3-protobuf, python3-numpy)", flush=True)
        return SKIP

    report = Report()
    workdir = tempfile.mkdtemp(prefix="tandem_contract_")
    try:
        run(args, workdir, report)
    except CheckFailed as e:
        report.fail("setup", str(e))
    except Exception as e:  # noqa: BLE001
        report.fail("setup", f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    finally:
        if args.keep_temp:
            print(f"temp dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{report.passed} passed, {report.failed} failed", flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
