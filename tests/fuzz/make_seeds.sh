#!/usr/bin/env bash
# Writes the fuzz targets' seed corpora (corpus/<target>/) from the readable
# descriptions below, with protoc --encode. Run from anywhere; rewrites the
# corpora. Needs protoc and zstd.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
proto=(protoc -I "$root/proto")

encode() {  # encode MESSAGE FILE.proto < text  ->  binary on stdout
  "${proto[@]}" --encode="tandem.v1.$1" "$root/proto/tandem/v1/$2"
}

# tensor_decode: uint16 LE spec length, TensorSpec, payload.
tensor_seed() {  # tensor_seed NAME 'spec text' PAYLOAD_FILE
  local spec len
  spec=$(mktemp)
  printf '%s' "$2" | encode TensorSpec tensor.proto >"$spec"
  len=$(stat -c %s "$spec")
  {
    printf "\\x$(printf %02x $((len & 255)))\\x$(printf %02x $((len >> 8)))"
    cat "$spec" "$3"
  } >"$here/corpus/tensor_decode/$1"
  rm -f "$spec"
}

# Inputs that once crashed a target (regression_*) stay.
find "$here/corpus" -type f ! -name "regression_*" -delete 2>/dev/null || true
mkdir -p "$here/corpus/tensor_decode" "$here/corpus/request" "$here/corpus/config"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf '\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\x40' >"$tmp/fp32x4"
printf '\x00\x3c\x00\x40\x00\x42\x00\x44' >"$tmp/fp16x4"
printf '\x00\x10\x80\xff' >"$tmp/u8x4"
zstd -q -c "$tmp/fp32x4" >"$tmp/fp32x4.zst"
zstd -q -c "$tmp/fp16x4" >"$tmp/fp16x4.zst"

tensor_seed fp32_raw 'name: "t" datatype: "FP32" shape: [1, 4]' "$tmp/fp32x4"
tensor_seed fp16 'name: "t" datatype: "FP32" shape: [1, 4] encoding: ENCODING_FP16' "$tmp/fp16x4"
tensor_seed affine 'name: "t" datatype: "FP32" shape: [1, 4] encoding: ENCODING_AFFINE_UINT8 scale: 0.5 zero_point: 3' "$tmp/u8x4"
tensor_seed affine_per_channel 'name: "t" datatype: "FP32" shape: [1, 2, 2] encoding: ENCODING_AFFINE_UINT8 scale: [0.5, 0.25] zero_point: [0, 10] quant_axis: 1' "$tmp/u8x4"
tensor_seed zstd_fp32 'name: "t" datatype: "FP32" shape: [1, 4] compression: COMPRESSION_ZSTD encoded_bytes: 16' "$tmp/fp32x4.zst"
tensor_seed zstd_fp16 'name: "t" datatype: "FP32" shape: [1, 4] encoding: ENCODING_FP16 compression: COMPRESSION_ZSTD encoded_bytes: 8' "$tmp/fp16x4.zst"
tensor_seed uint8_raw 'name: "t" datatype: "UINT8" shape: [2, 2]' "$tmp/u8x4"
tensor_seed fp16_datatype 'name: "t" datatype: "FP16" shape: [4]' "$tmp/fp16x4"

# request: selector byte (0 Infer, 1 Continue), then the request.
request_seed() {  # request_seed NAME SELECTOR MESSAGE FILE 'text'
  { printf "\\x0$2"; printf '%s' "$5" | encode "$3" "$4"; } >"$here/corpus/request/$1"
}
payload='raw_input_contents: "\000\000\200?\000\000\000@\000\000@@\000\000\200@"'
request_seed infer 0 InferRequest edge_service.proto \
  "model_name: \"fmnist_branchy\" id: \"r\" inputs { name: \"image\" datatype: \"FP32\" shape: [1, 4] } $payload min_accuracy: 0.9 top_k: 3 split_point: 2"
request_seed infer_affine 0 InferRequest edge_service.proto \
  'model_name: "fmnist_branchy" inputs { name: "image" datatype: "FP32" shape: [1, 4] encoding: ENCODING_AFFINE_UINT8 scale: 0.0039 zero_point: 0 } raw_input_contents: "\001\002\003\004"'
request_seed continue 1 ContinueRequest cloud_service.proto \
  "model_name: \"fmnist_branchy\" id: \"c\" start_block: 1 exit_thresholds { key: 1 value: 0.8 } exit_thresholds { key: 2 value: 0.5 } top_k: 1 deadline_remaining_us: 50000 inputs { name: \"activation\" datatype: \"FP32\" shape: [1, 4] } $payload"
request_seed continue_fp16 1 ContinueRequest cloud_service.proto \
  'model_name: "fmnist_branchy" start_block: 2 inputs { name: "activation" datatype: "FP32" shape: [1, 4] encoding: ENCODING_FP16 } raw_input_contents: "\000<\000@\000B\000D"'

# config: selector byte (0 edge, 1 cloud, 2 model package, 3 tokens, 4
# file mode), then the text.
config_seed() { { printf "\\x0$2"; cat; } >"$here/corpus/config/$1"; }
config_seed edge 0 <"$root/deploy/config/edge.pbtxt"
config_seed cloud 1 <"$root/deploy/config/cloud.pbtxt"
config_seed model 2 <<'TEXT'
name: "fmnist_branchy"
platform: "tandem_torchscript"
max_batch_size: 64
input { name: "image" datatype: "FP32" dims: [1, 28, 28] }
num_blocks: 4
exits { block: 0 threshold: 0.8 calibration { threshold: 0.5 exit_rate: 0.95 accuracy: 0.92 } }
exits { block: 1 threshold: 0.75 }
exits { block: 2 threshold: 0.55 }
exits { block: 3 threshold: 0 }
version_policy { latest { num_versions: 2 } }
TEXT
config_seed tokens 3 <<'TEXT'
# fleet
3f9c2a7e61d04b58a1e0c97f2d6b8e41 camera_branchy fmnist_branchy
a04be1c9d27f4e3a8b6c05d91e7f2a36
TEXT
printf '0660' | config_seed mode 4
echo "seeds: $(find "$here/corpus" -type f | wc -l) files in $here/corpus"
