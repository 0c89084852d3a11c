#!/usr/bin/env python3
"""Whole-guest benchmark: boot Debian's i386 kernel with the busybox initramfs
(fetched by scripts/fetch-guests) on ferrite (JIT on, and the interpreter
alone) and on qemu-system-i386 with TCG, same files, same run, and report wall
time to the init's marker line, to its last line, and of its CPU job, with
the ratios (medians over --runs rounds), the time of each phase of the boot
(`PHASES`: up to the kernel's first console line, the initcalls, ...), of each
step of the job (the init prints a FERRITE-STEP line after each) and of the
floating-point job after it (step `fp`, between FERRITE-FP-START and
FERRITE-FP), and each run's peak
resident size (ferrite's must stay under guest RAM + 128 MiB).

    python3 benches/linux-boot.py [--ferrite PATH] [--timeout S] [--mode kernel|disk] [--runs N] [--no-interp]

--mode kernel: direct kernel boot (ferrite: own BIOS, --kernel; QEMU: -kernel).
--mode disk:   SeaBIOS boots the SYSLINUX disk image on both.
ferrite runs unpaced (--no-pacing); both get 128 MiB and the same disk and CD.
Exit status 0 when every emulator reached the marker and ferrite stayed within
its memory budget, 1 otherwise.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MARKER = "FERRITE-MARKER"
GUEST_MIB = 128
# ferrite's peak resident size may exceed the guest's RAM by this much.
OVERHEAD_MIB = 128
DONE = "FERRITE-DONE"
# Console lines that split the boot into phases, reported like the job's
# steps: each phase is the time from the previous line (from the start for
# the first). "Linux version" is the first line the kernel prints, after the
# decompressor and the early setup; the initramfs is unpacked by "Freeing
# initrd memory"; the initcalls end at "Run /init".
PHASES = [
    ("boot-early", "Linux version"),
    ("boot-initcalls", "Freeing initrd memory"),
    ("boot-late", "Run /init as init process"),
    ("boot-init", MARKER),
]


def timed_boot(name, cmd, timeout, log_path):
    """Run cmd, timestamp its console lines; returns (t_marker, t_done, job time,
    peak resident size in MiB, {step or boot phase: seconds since the previous one})."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    t_marker = t_done = t_job0 = t_job1 = t_fp0 = None
    steps, t_prev = {}, None
    phase, t_phase = 0, 0.0
    lines = []
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            now = time.monotonic() - start
            if phase < len(PHASES) and PHASES[phase][1] in line:
                steps[PHASES[phase][0]] = now - t_phase
                phase, t_phase = phase + 1, now
            if MARKER in line and t_marker is None:
                t_marker = now
            if "FERRITE-JOB-START" in line and t_job0 is None:
                t_job0 = t_prev = now
            elif line.startswith("FERRITE-STEP: ") and t_prev is not None:
                steps[line.split(": ", 1)[1].strip()] = now - t_prev
                t_prev = now
            elif "FERRITE-JOB:" in line and t_job1 is None:
                t_job1 = now
            if "FERRITE-FP-START" in line:
                t_fp0 = now
            elif line.startswith("FERRITE-FP: ") and t_fp0 is not None:
                # (Reported as a step of its own: `fp`.)
                steps["fp"] = now - t_fp0
            if DONE in line and t_done is None:
                t_done = now
                # QEMU idles after the guest halts; ferrite exits by itself.
                if name == "qemu":
                    proc.kill()
    finally:
        timer.cancel()
        # (wait4 for the child's own peak RSS: KiB on Linux.)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    with open(log_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    job = t_job1 - t_job0 if t_job0 is not None and t_job1 is not None else None
    return t_marker, t_done, job, usage.ru_maxrss / 1024, steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferrite", default=None, help="ferrite binary (default: build it with cargo --release)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--mode", choices=["kernel", "disk"], default="kernel")
    ap.add_argument("--logs", default=None, help="directory for the console logs")
    ap.add_argument("--runs", type=int, default=1, help="rounds of boots, one per emulator each (medians are reported)")
    ap.add_argument("--no-interp", action="store_true", help="skip ferrite's interpreter-only run")
    args = ap.parse_args()

    cache = os.environ.get("FERRITE_CACHE", os.path.join(REPO, "cache", "guests"))
    linux = os.path.join(cache, "linux")
    kernel, initrd, disk = (os.path.join(linux, f) for f in ("vmlinuz", "initrd.gz", "disk.img"))
    seabios = os.path.join(cache, "seabios-images", "bios.bin")
    for f in (kernel, initrd, disk, seabios):
        if not os.path.exists(f):
            print(f"SKIPPED: {f} is missing (run scripts/fetch-guests)")
            return 0

    ferrite = args.ferrite
    if ferrite is None:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "ferrite"], cwd=REPO, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
        ferrite = os.path.join(target, "release", "ferrite")

    work = tempfile.mkdtemp(prefix="ferrite-linux-bench-")
    logs = args.logs or work
    os.makedirs(logs, exist_ok=True)
    append = "console=ttyS0"
    # A blank 1 MiB "CD" so both machines have the same ATAPI drive.
    cd = os.path.join(work, "blank.iso")
    with open(cd, "wb") as f:
        f.write(bytes(1 << 20))
    runs = []
    names = ["ferrite-jit"] + ([] if args.no_interp else ["ferrite-interp"]) + ["qemu"]
    # Rounds of one boot per emulator, so that a host that drifts in speed
    # over the minutes (this one does) weighs on both alike; the
    # interpreter, some 20 times slower, boots in the first round only.
    schedule = [n for r in range(max(1, args.runs)) for n in names if r == 0 or n != "ferrite-interp"]
    for name in schedule:
        if name == "qemu" and shutil.which("qemu-system-i386") is None:
            if not any(r[0] == "qemu" for r in runs):
                print("qemu: SKIPPED (qemu-system-i386 not installed; apt-get install qemu-system-x86)")
            runs.append(("qemu", None, None, None, "-", None, {}))
            continue
        img = os.path.join(work, f"{name}.img")
        shutil.copyfile(disk, img)
        if name.startswith("ferrite"):
            jit = "on" if name == "ferrite-jit" else "off"
            cmd = [ferrite, "run", "-m", str(GUEST_MIB), "--no-pacing", "--serial", "stdio", "--timeout", str(args.timeout),
                   "--jit", jit, "--hda", img, "--cdrom", cd]
            if args.mode == "kernel":
                cmd += ["--kernel", kernel, "--initrd", initrd, "--append", append]
            else:
                cmd += ["--bios", seabios]
        else:
            cmd = ["qemu-system-i386", "-accel", "tcg", "-m", str(GUEST_MIB), "-display", "none", "-serial", "stdio",
                   "-monitor", "none", "-no-reboot", "-drive", f"file={img},format=raw,if=ide,index=0",
                   "-drive", f"file={cd},format=raw,if=ide,index=2,media=cdrom,readonly=on"]
            if args.mode == "kernel":
                cmd += ["-kernel", kernel, "-initrd", initrd, "-append", append]
            else:
                cmd += ["-bios", seabios]
        log = os.path.join(logs, f"{name}-{args.mode}.log")
        t_marker, t_done, job, rss, steps = timed_boot(name, cmd, args.timeout, log)
        runs.append((name, t_marker, t_done, job, log, rss, steps))

    # The disk copies are 64 MiB each: keep only the logs.
    for f in os.listdir(work):
        if f.endswith((".img", ".iso")):
            os.remove(os.path.join(work, f))
    fmt = lambda t: "-" if t is None else f"{t:.2f} s"
    print(f"Linux boot ({args.mode}): wall time to '{MARKER}', to '{DONE}', and of the init's CPU job")
    for name, tm, td, job, log, rss, steps in runs:
        if log != "-":
            print(
                f"  {name:14} marker {fmt(tm):>10}   done {fmt(td):>10}   job {fmt(job):>10}   "
                f"peak RSS {rss:6.1f} MiB   log {log}"
            )
            if steps:
                print("  " + " " * 14 + "   ".join(f"{k} {v:.2f} s" for k, v in steps.items()))

    def median(name, k):
        vals = sorted(r[k] for r in runs if r[0] == name and r[k] is not None)
        return vals[len(vals) // 2] if vals else None

    med = {n: (median(n, 1), median(n, 3)) for n in names}
    if args.runs > 1:
        for n in names:
            print(f"  median {n:14} marker {fmt(med[n][0]):>10}   job {fmt(med[n][1]):>10}")

    def step_median(name, step):
        vals = sorted(r[6][step] for r in runs if r[0] == name and step in r[6])
        return vals[len(vals) // 2] if vals else None

    order = list(dict.fromkeys(k for r in runs for k in r[6]))
    for step in order:
        j, q = step_median("ferrite-jit", step), step_median("qemu", step)
        both = f"   ratio {j / q:.2f}" if j and q else ""
        print(f"  step {step:14} ferrite-jit {fmt(j):>8}   qemu {fmt(q):>8}{both}")

    def ratio(label, a, b):
        if a and b:
            print(f"  {label}: {a / b:.2f}")

    (jm, jj), (qm, qj) = med["ferrite-jit"], med["qemu"]
    ratio("ferrite(JIT)/qemu time-to-marker ratio", jm, qm)
    ratio("ferrite(JIT)/qemu CPU-job ratio", jj, qj)
    ratio("ferrite(JIT)/qemu floating-point-job ratio", step_median("ferrite-jit", "fp"), step_median("qemu", "fp"))
    if "ferrite-interp" in med:
        im, ij = med["ferrite-interp"]
        ratio("ferrite(interpreter)/qemu time-to-marker ratio", im, qm)
        ratio("JIT speed-up over the interpreter, time to marker", im, jm)
        ratio("JIT speed-up over the interpreter, CPU job", ij, jj)
    ok = all(tm is not None for n, tm, *_ in runs if n != "qemu" or shutil.which("qemu-system-i386"))
    budget = GUEST_MIB + OVERHEAD_MIB
    peak = max((r[5] for r in runs if r[0].startswith("ferrite") and r[5] is not None), default=None)
    if peak is not None:
        verdict = "within" if peak <= budget else "OVER"
        print(f"  ferrite peak resident size: {peak:.1f} MiB ({verdict} guest RAM + {OVERHEAD_MIB} MiB = {budget} MiB)")
        ok = ok and peak <= budget
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
