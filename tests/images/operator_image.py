#!/usr/bin/env python3
"""The operator's image without docker or a registry: the repository's Dockerfile is the recipe.

USER, ENTRYPOINT, CMD, EXPOSE and the binary's path are read from the Dockerfile's final stage, and
the filesystem reproduces its base (gcr.io/distroless/static-debian12:nonroot): /etc/passwd and
/etc/group with nonroot (65532), /etc/nsswitch.conf, the CA bundle (SSL_CERT_FILE), /tmp (1777),
/home/nonroot. The one difference: the Dockerfile links a static musl binary, and no musl target
exists here, so the glibc binary is packed with the shared libraries it links (ldd). glibc 2.34+
has its files/dns name service built into libc.so.6, so name resolution needs no NSS modules.

Usage: operator_image.py --binary PATH --repository NAME --out FILE [--dockerfile PATH]
Prints the image reference (NAME:TAG, TAG from the archive's content) as its last line.
"""
import argparse
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docker_archive import layer_tar, write_archive  # noqa: E402

PASSWD = ("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
          "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
GROUP = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", f"SSL_CERT_FILE={CA_BUNDLE}"]


def final_stage(dockerfile):
    """USER, ENTRYPOINT, CMD, EXPOSE and the COPY --from destination of the last FROM stage."""
    text = re.sub(r"\\\n", " ", open(dockerfile).read())
    stage = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stage = []
        stage.append(line)
    spec = {"expose": []}
    for line in stage:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "USER":
            spec["user"] = rest.strip()
        elif word in ("ENTRYPOINT", "CMD"):
            spec[word.lower()] = json.loads(rest)
        elif word == "EXPOSE":
            spec["expose"] += [p if "/" in p else p + "/tcp" for p in rest.split()]
        elif word == "COPY" and "--from=" in rest:
            spec["binary_path"] = shlex.split(rest)[-1]
    missing = {"user", "entrypoint", "cmd", "binary_path"} - spec.keys()
    if missing:
        sys.exit(f"{dockerfile}: final stage lacks {sorted(missing)}")
    return spec


def shared_libraries(binary):
    """Every library the dynamic loader maps for the binary, loader included (real files)."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--repository", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dockerfile", default=os.path.join(os.path.dirname(__file__), "../../Dockerfile"))
    a = ap.parse_args()
    spec = final_stage(a.dockerfile)

    staging = a.out + ".d"
    os.makedirs(staging, exist_ok=True)
    for name, content in [("passwd", PASSWD), ("group", GROUP), ("nsswitch.conf", NSSWITCH)]:
        with open(os.path.join(staging, name), "w") as f:
            f.write(content)
    files = [f"{a.binary}:{spec['binary_path']}:755", f"{os.path.realpath(CA_BUNDLE)}:{CA_BUNDLE}:644"]
    files += [f"{staging}/{n}:/etc/{n}:644" for n in ("passwd", "group", "nsswitch.conf")]
    files += [f"{os.path.realpath(lib)}:{lib}:755" for lib in shared_libraries(a.binary)]
    layer = layer_tar(files, ["/tmp:1777", "/home/nonroot:700:65532"], [])
    tag = hashlib.sha256(layer).hexdigest()[:16]
    reference = f"{a.repository}:{tag}"
    write_archive(a.out, reference, layer, {
        "User": spec["user"],
        "Env": ENV,
        "Entrypoint": spec["entrypoint"],
        "Cmd": spec["cmd"],
        "WorkingDir": "",
        "ExposedPorts": {p: {} for p in spec["expose"]} or None,
    })
    for name in ("passwd", "group", "nsswitch.conf"):
        os.remove(os.path.join(staging, name))
    os.rmdir(staging)
    print(reference)


if __name__ == "__main__":
    main()
