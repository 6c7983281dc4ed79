#!/bin/sh
# The GPU pod's init container: TensorRT plans for the GPU it landed on, built once per GPU
# model and then reused from a cache that pods share.
#
#   sh build-engines.sh SOURCE DEST CACHE -- COMMAND [ARG...]
#
# 1. Copy the image's model packages (SOURCE) to DEST, the pod's own volume the server reads.
# 2. For each package, copy the folders of its cache entry into DEST/<package>/engines/.
# 3. Run COMMAND --package DEST/<package> (python -m compile tensorrt ... --skip-existing). It
#    keeps a copied plan only where it fits: the GPU's name and compute capability, the
#    TensorRT version, the hash of the package's ONNX graph, the profile, and the plan's own
#    hash (compile/tensorrt_build.py, plan_is_current); anything else is rebuilt here.
# 4. Publish each DEST/<package>/engines/<gpu>-trt<version>/ folder to the cache entry where it
#    is missing or differs (a new folder is renamed into place, so readers never see half).
#
# A cache entry is CACHE/<package>-<key>: key is the sha256 of the package's model.json (which
# holds the sha256 of every weight and graph file) and of COMMAND, so a new model or other
# build flags never meet old plans; the folders inside are named by GPU and TensorRT version.
#
# A plan is executable code for the GPU. Only this init container (the same image as the
# server) mounts CACHE, and it is the only writer; the server reads its own copy in DEST.
# See deploy/README.md ("TensorRT plans") for who else can write the cache.
set -eu

if [ "$#" -lt 5 ] || [ "$4" != "--" ]; then
    echo "usage: $0 SOURCE DEST CACHE -- COMMAND [ARG...]" >&2
    exit 2
fi
source_dir=$1
dest_dir=$2
cache_dir=$3
shift 4

# publish BUILT ENTRY: copy a plans folder into the cache entry, then rename it into place.
publish() {
    target="$2/$(basename "$1")"
    mkdir -p "$2" || return 1
    staging=$(mktemp -d "$2/.staging.XXXXXX") || return 1
    cp -R "$1/." "$staging/" || { rm -rf "$staging"; return 1; }
    if [ -d "$target" ]; then  # stale, or another pod's build: set it aside, then replace it
        if mv -T "$target" "$staging.old" 2>/dev/null; then rm -rf "$staging.old"; fi
    fi
    if ! mv -T "$staging" "$target" 2>/dev/null; then
        rm -rf "$staging"  # another pod published at the same moment: its plans do as well
    fi
}

mkdir -p "$dest_dir"
cp -R -n "$source_dir/." "$dest_dir/"

for package in "$dest_dir"/*/; do
    package=${package%/}
    [ -f "$package/model.json" ] || continue
    name=$(basename "$package")
    key=$({ cat "$package/model.json"; printf '%s\n' "$@"; } | sha256sum | cut -c1-16)
    entry="$cache_dir/$name-$key"

    # A cache that cannot be read or written costs a build, never the pod.
    for cached in "$entry"/*/; do
        [ -d "$cached" ] || continue
        folder=$(basename "$cached")
        [ ! -e "$package/engines/$folder" ] || continue
        mkdir -p "$package/engines"
        if cp -R "${cached%/}" "$package/engines/$folder"; then
            echo "$name: plans from the cache: $folder"
        else
            rm -rf "${package:?}/engines/$folder"
            echo "$name: could not read the cache ($cached); building instead" >&2
        fi
    done

    "$@" --package "$package"

    for built in "$package"/engines/*/; do
        [ -d "$built" ] || continue
        built=${built%/}
        folder=$(basename "$built")
        if [ -d "$entry/$folder" ] && diff -r -q "$built" "$entry/$folder" >/dev/null 2>&1; then
            continue  # the cache holds these plans already
        fi
        if publish "$built" "$entry"; then
            echo "$name: plans cached: $folder"
        else
            echo "$name: could not write the cache ($entry); this pod serves its own plans" >&2
        fi
    done
done
