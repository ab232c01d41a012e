#!/usr/bin/env bash
# Seeds tests/fuzz/corpus/<target>/ from the fixtures (corpora are not committed).
# Usage: tests/fuzz/seed.sh [target ...]   (default: every target)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ai=$root/fixtures/ai

seed() { # target, then find(1) name patterns
    local target=$1; shift
    local dir=$here/corpus/$target
    mkdir -p "$dir"
    local args=() first=1
    for pattern in "$@"; do
        if [ $first = 1 ]; then first=0; else args+=(-o); fi
        args+=(-name "$pattern")
    done
    find "$ai" -type f \( "${args[@]}" \) -print0 2>/dev/null |
        while IFS= read -r -d '' f; do
            cp "$f" "$dir/$(sha1sum "$f" | cut -c1-16)"
        done
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(archive notebook pickle safetensors gguf onnx npy hdf5 parquet tfevents wandb savedmodel scan_content)
for t in "${targets[@]}"; do
    case $t in
        archive) seed archive '*.zip' '*.gz' '*.tar' '*.pt' '*.bin' '*.keras' '*.npz' ;;
        notebook) seed notebook '*.ipynb' ;;
        pickle) seed pickle '*.pkl' '*.joblib' '*.pickle' ;;
        safetensors) seed safetensors '*.safetensors' ;;
        gguf) seed gguf '*.gguf' ;;
        onnx) seed onnx '*.onnx' ;;
        npy) seed npy '*.npy' ;;
        hdf5) seed hdf5 '*.h5' ;;
        parquet) seed parquet '*.parquet' ;;
        tfevents) seed tfevents 'events.out.tfevents.*' ;;
        wandb) seed wandb '*.wandb' ;;
        savedmodel) seed savedmodel 'saved_model.pb' 'keras_metadata.pb' ;;
        scan_content)
            seed scan_content '*'
            find "$root/fixtures/project" -type f -size -256k -print0 |
                while IFS= read -r -d '' f; do
                    cp "$f" "$here/corpus/scan_content/$(sha1sum "$f" | cut -c1-16)"
                done ;;
        *) echo "unknown target: $t" >&2; exit 2 ;;
    esac
    echo "$t: $(ls "$here/corpus/$t" | wc -l) inputs"
done

# Small versions of the hostile shapes of tests/hostile*.rs: deep gzip nesting, a notebook of
# many tiny strings, front matter full of keys, a run of key ids joined by '/'.
python3 - "$here/corpus" <<'PY'
import gzip, io, json, os, sys, tarfile
out = sys.argv[1]
def put(target, name, data):
    d = os.path.join(out, target)
    if os.path.isdir(d):
        open(os.path.join(d, name), "wb").write(data)
layer = b"AKIAQYLPMN5HHHFPZAM2 token=ghp_" + b"x" * 36
for _ in range(64):
    layer = gzip.compress(layer, mtime=0)
put("archive", "hostile-deep-gzip", layer)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    body = b"hf_" + b"a" * 34
    info = tarfile.TarInfo("hf_" + "b" * 34 + "/model.bin"); info.size = len(body)
    t.addfile(info, io.BytesIO(body))
put("archive", "hostile-secret-name.tar", buf.getvalue())
nb = {"cells": [{"cell_type": "code", "source": ["a"] * 2000, "outputs": [], "metadata": {}}],
      "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
put("notebook", "hostile-many-strings.ipynb", json.dumps(nb).encode())
put("scan_content", "hostile-front-matter.md",
    b"---\n" + b"".join(b"k%d: AKIAQYLPMN5HHHF%05d\n" % (i, i) for i in range(200)) + b"---\n# card\n")
put("scan_content", "hostile-joined-ids.txt", b"/".join(b"AKIAQYLPMN5HHHF%05d" % i for i in range(200)))
# A joblib NumpyArrayWrapper whose shape claims 2**62 x 2**62 float32 elements, then a string.
s = lambda t: b"\x8c" + bytes([len(t)]) + t
dtype = s(b"numpy") + s(b"dtype") + b"\x93" + s(b"f4") + b"\x89\x88\x87R(K\x03" + s(b"<") + \
    b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
big = b"\x8a\x08" + (1 << 62).to_bytes(8, "little")
put("pickle", "hostile-joblib-shape",
    b"\x80\x04}(" + s(b"a") + s(b"joblib.numpy_pickle") + s(b"NumpyArrayWrapper") + b"\x93)\x81}(" +
    s(b"shape") + big + big + b"\x86" + s(b"order") + s(b"C") + s(b"dtype") + dtype +
    s(b"numpy_array_alignment_bytes") + b"K\x10ub\x00" + b"\x00" * 16 + s(b"after") + s(b"x") + b"u.")
PY
echo "hostile seeds added"
