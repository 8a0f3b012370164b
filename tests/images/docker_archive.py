#!/usr/bin/env python3
"""Assembles a one-layer image as a docker-archive tar (what `docker save` writes and
`ctr images import` reads) without docker or a registry.

Deterministic: entries sorted, owner root, mtime 0, so the same inputs give the same image id.

Usage: docker_archive.py --tag REF --out FILE [--user U] [--entrypoint JSON] [--cmd JSON]
         [--env K=V]... [--expose PORT/tcp]... [--workdir DIR]
         [--file SRC:DEST[:MODE]]... [--dir DEST[:MODE[:UID]]]... [--symlink DEST:TARGET]... [--tree SRC_DIR:DEST_DIR]...
"""
import argparse
import hashlib
import io
import json
import tarfile


def entry(name, kind, mode, data=None, target=None, owner=0):
    info = tarfile.TarInfo(name.lstrip("/"))
    info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, 0, owner, owner
    info.uname = info.gname = ""
    if target is not None:
        info.linkname = target
    if data is not None:
        info.size = len(data)
    return info, data


def tree_files(spec):
    """`SRC_DIR:DEST_DIR` -> a `SRC:DEST:MODE` file spec for every regular file under SRC_DIR."""
    import os
    src, dest = spec.split(":", 1)
    out = []
    for root, _, names in os.walk(src):
        for name in names:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                mode = "755" if os.access(path, os.X_OK) else "644"
                out.append(f"{path}:{dest.rstrip('/')}/{os.path.relpath(path, src)}:{mode}")
    return out


def layer_tar(files, dirs, symlinks):
    entries = {}
    def parents(path):
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            entries.setdefault(p, entry(p, tarfile.DIRTYPE, 0o755))
    for spec in dirs:
        dest, *rest = spec.split(":")
        mode = rest[0] if rest else "755"
        owner = int(rest[1]) if len(rest) > 1 else 0
        parents(dest)
        entries[dest.strip("/")] = entry(dest, tarfile.DIRTYPE, int(mode, 8), owner=owner)
    for spec in files:
        src, dest, *mode = spec.split(":")
        parents(dest)
        with open(src, "rb") as f:
            data = f.read()
        entries[dest.strip("/")] = entry(dest, tarfile.REGTYPE, int(mode[0] if mode else "644", 8), data)
    for spec in symlinks:
        dest, target = spec.split(":", 1)
        parents(dest)
        entries[dest.strip("/")] = entry(dest, tarfile.SYMTYPE, 0o777, target=target)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(entries):
            info, data = entries[name]
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def write_archive(out, tag, layer, image_config):
    """Writes the docker-archive; returns the image id (the config's sha256)."""
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "tests/images/docker_archive.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = layer_digest[len("sha256:"):] + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [layer_name]}]
    with tarfile.open(out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in [(config_name, config_bytes), (layer_name, layer),
                           ("manifest.json", json.dumps(manifest).encode())]:
            info, _ = entry(name, tarfile.REGTYPE, 0o644, data)
            tar.addfile(info, io.BytesIO(data))
    return config_name[:-len(".json")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--user", default="")
    ap.add_argument("--entrypoint", default="null")
    ap.add_argument("--cmd", default="null")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--expose", action="append", default=[])
    ap.add_argument("--workdir", default="")
    ap.add_argument("--file", action="append", default=[])
    ap.add_argument("--dir", action="append", default=[])
    ap.add_argument("--symlink", action="append", default=[])
    ap.add_argument("--tree", action="append", default=[], help="SRC_DIR:DEST_DIR, every regular file")
    a = ap.parse_args()
    for spec in a.tree:
        a.file += tree_files(spec)

    layer = layer_tar(a.file, a.dir, a.symlink)
    print(write_archive(a.out, a.tag, layer, {
        "User": a.user,
        "Env": a.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Entrypoint": json.loads(a.entrypoint),
        "Cmd": json.loads(a.cmd),
        "WorkingDir": a.workdir,
        "ExposedPorts": {p: {} for p in a.expose} or None,
    }))

if __name__ == "__main__":
    main()
