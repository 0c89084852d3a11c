#!/usr/bin/env python3
"""Build the tiny initramfs the Linux boot tests use (called by fetch-guests).

Usage: mkinitramfs.py BUSYBOX MODULES_DIR OUTPUT

BUSYBOX is Debian's static i386 busybox, MODULES_DIR the kernel's
lib/modules/<version> tree. The archive (gzip'd cpio "newc") holds busybox,
an /init script (scripts/guest-init.sh) and the kernel modules the guest needs
for the IDE disk and CD (ata_piix, sd_mod, sr_mod) and a FAT filesystem, with
every module's dependencies loaded first (read from the modules' own
"depends=" records, as the package ships no modules.dep).
"""

import gzip
import os
import stat
import sys

# What /init loads, in this order; dependencies are added in front.
WANTED = ["ata_piix", "sd_mod", "sr_mod", "vfat", "nls_cp437", "nls_ascii", "nls_utf8"]
# Loaded only when the kernel command line has `ferrite.drm`: the DRM
# driver of the Bochs VBE display (QEMU's standard VGA, ferrite's VGA).
WANTED_DRM = ["bochs"]


def index_modules(root):
    mods = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".ko"):
                mods[f[:-3].replace("-", "_")] = os.path.join(dirpath, f)
    return mods


def depends(path):
    data = open(path, "rb").read()
    key = b"\0depends="
    i = data.find(key)
    if i < 0:
        return []
    j = data.index(b"\0", i + 1)
    deps = data[i + len(key) : j].decode()
    return [d.replace("-", "_") for d in deps.split(",") if d]


def load_order(mods, wanted):
    order, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        if name not in mods:
            sys.exit(f"mkinitramfs: module {name} not found in the kernel package")
        for d in depends(mods[name]):
            visit(d)
        order.append(name)

    for w in wanted:
        visit(w)
    return order


class Cpio:
    def __init__(self):
        self.out = bytearray()
        self.ino = 1

    def _entry(self, name, mode, data=b""):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(
            f"{v:08X}"
            for v in [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0]
        )
        self.ino += 1
        self.out += hdr.encode() + name_b
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def dir(self, name):
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name, data, perm=0o644):
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return bytes(self.out)


def main():
    busybox, moddir, output = sys.argv[1:4]
    here = os.path.dirname(os.path.abspath(__file__))
    mods = index_modules(moddir)
    order = load_order(mods, WANTED)
    drm_order = [m for m in load_order(mods, WANTED_DRM) if m not in order]
    a = Cpio()
    for d in ["bin", "sbin", "dev", "proc", "sys", "mnt", "tmp", "lib", "lib/modules"]:
        a.dir(d)
    a.file("bin/busybox", open(busybox, "rb").read(), 0o755)
    a.symlink("bin/sh", "busybox")
    for name in order + drm_order:
        a.file(f"lib/modules/{name}.ko", open(mods[name], "rb").read())
    a.file("lib/modules/load-order", ("\n".join(order) + "\n").encode())
    a.file("lib/modules/drm-order", ("\n".join(drm_order) + "\n").encode())
    a.file("init", open(os.path.join(here, "guest-init.sh"), "rb").read(), 0o755)
    data = gzip.compress(a.finish(), 9, mtime=0)
    with open(output, "wb") as f:
        f.write(data)
    print(
        f"mkinitramfs: {output}: {len(data)} bytes, modules: {' '.join(order)}; with ferrite.drm: {' '.join(drm_order)}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
