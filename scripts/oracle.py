#!/usr/bin/env python3
"""Compare ModKit's linker with ld.lld, relocation by relocation.

For each object, or for all objects as one module (--module): `modkit link` lays it out at
fixed addresses and writes the relocated image and a map. ld.lld then links the same objects
with a generated linker script that puts every section at the map's address, the GOT (.got)
where ModKit put its GOT, and each undefined symbol at the map's address (--defsym), with
relaxation off. The script compares the bytes of
every relocated field in both outputs. Calls that go through a branch stub (ModKit) or a range
extension thunk (lld) are compared by the final address they reach. x86_64 fields relative to
_GLOBAL_OFFSET_TABLE_, which lld defines at .got.plt and ModKit at its GOT, are compared by the
address or GOT entry they name. .eh_frame, which lld rewrites, is compared by decoding: each FDE
must cover the same code in both outputs.

Standard library only. Run through scripts/oracle.sh, which finds modkit and ld.lld.
"""

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile

EM_X86_64 = 62
EM_AARCH64 = 183
SHT_SYMTAB = 2
SHT_RELA = 4
SHT_NOBITS = 8
SHF_ALLOC = 0x2
SHF_MERGE = 0x10
SHF_STRINGS = 0x20

# x86_64: relocation type -> (name, field width in bytes)
X86_64_TYPES = {
    0: ("R_X86_64_NONE", 0), 1: ("R_X86_64_64", 8), 2: ("R_X86_64_PC32", 4), 3: ("R_X86_64_GOT32", 4),
    4: ("R_X86_64_PLT32", 4), 9: ("R_X86_64_GOTPCREL", 4), 10: ("R_X86_64_32", 4), 11: ("R_X86_64_32S", 4),
    12: ("R_X86_64_16", 2), 13: ("R_X86_64_PC16", 2), 14: ("R_X86_64_8", 1), 15: ("R_X86_64_PC8", 1),
    24: ("R_X86_64_PC64", 8), 25: ("R_X86_64_GOTOFF64", 8), 26: ("R_X86_64_GOTPC32", 4),
    27: ("R_X86_64_GOT64", 8), 28: ("R_X86_64_GOTPCREL64", 8), 29: ("R_X86_64_GOTPC64", 8),
    30: ("R_X86_64_GOTPLT64", 8), 31: ("R_X86_64_PLTOFF64", 8), 32: ("R_X86_64_SIZE32", 4),
    33: ("R_X86_64_SIZE64", 8), 41: ("R_X86_64_GOTPCRELX", 4), 42: ("R_X86_64_REX_GOTPCRELX", 4),
}
X86_64_BRANCHES = {4}
# x86_64 types relative to the GOT base (_GLOBAL_OFFSET_TABLE_), which ld.lld puts at .got.plt
# and ModKit at its GOT: type -> what field + base (or field - base) gives.
X86_64_GOT_BASE_RELATIVE = {
    25: "address",  # GOTOFF64: S + A - GOT
    31: "branch",  # PLTOFF64: L + A - GOT
    26: "place",  # GOTPC32: GOT + A - P
    29: "place",  # GOTPC64: GOT + A - P
    3: "entry",  # GOT32: G + A
    27: "entry",  # GOT64: G + A
    30: "entry",  # GOTPLT64: G + A
}

AARCH64_NAMES = {
    0: "NONE", 256: "NONE", 257: "ABS64", 258: "ABS32", 259: "ABS16", 260: "PREL64", 261: "PREL32",
    262: "PREL16", 263: "MOVW_UABS_G0", 264: "MOVW_UABS_G0_NC", 265: "MOVW_UABS_G1",
    266: "MOVW_UABS_G1_NC", 267: "MOVW_UABS_G2", 268: "MOVW_UABS_G2_NC", 269: "MOVW_UABS_G3",
    270: "MOVW_SABS_G0", 271: "MOVW_SABS_G1", 272: "MOVW_SABS_G2", 273: "LD_PREL_LO19",
    274: "ADR_PREL_LO21", 275: "ADR_PREL_PG_HI21", 276: "ADR_PREL_PG_HI21_NC", 277: "ADD_ABS_LO12_NC",
    278: "LDST8_ABS_LO12_NC", 279: "TSTBR14", 280: "CONDBR19", 282: "JUMP26", 283: "CALL26",
    284: "LDST16_ABS_LO12_NC", 285: "LDST32_ABS_LO12_NC", 286: "LDST64_ABS_LO12_NC",
    287: "MOVW_PREL_G0", 288: "MOVW_PREL_G0_NC", 289: "MOVW_PREL_G1", 290: "MOVW_PREL_G1_NC",
    291: "MOVW_PREL_G2", 292: "MOVW_PREL_G2_NC", 293: "MOVW_PREL_G3", 299: "LDST128_ABS_LO12_NC",
    309: "GOT_LD_PREL19", 311: "ADR_GOT_PAGE", 312: "LD64_GOT_LO12_NC", 313: "LD64_GOTPAGE_LO15",
    314: "PLT32", 315: "GOTPCREL32",
}
AARCH64_WIDTHS = {0: 0, 256: 0, 257: 8, 258: 4, 259: 2, 260: 8, 261: 4, 262: 2, 314: 4, 315: 4}
AARCH64_BRANCHES = {282, 283, 314}  # JUMP26, CALL26, PLT32


def relocation_name(machine, rtype):
    if machine == EM_X86_64:
        return X86_64_TYPES.get(rtype, ("unknown type %d" % rtype, 0))[0]
    name = AARCH64_NAMES.get(rtype)
    return "R_AARCH64_" + name if name else "unknown type %d" % rtype


def field_width(machine, rtype):
    if machine == EM_X86_64:
        return X86_64_TYPES.get(rtype, (None, None))[1]
    if rtype in AARCH64_WIDTHS:
        return AARCH64_WIDTHS[rtype]
    return 4 if rtype in AARCH64_NAMES else None


# ---------------------------------------------------------------------------------------------
# ELF reading


class Elf:
    """The sections, symbols and relocations of an ELF64 little-endian file."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] != 2 or d[5] != 1:
            raise SystemExit("oracle: %s: not a 64-bit little-endian ELF file" % path)
        self.machine = struct.unpack_from("<H", d, 18)[0]
        shoff = struct.unpack_from("<Q", d, 40)[0]
        shnum, shstrndx = struct.unpack_from("<HH", d, 60)
        if shnum == 0:
            shnum = struct.unpack_from("<Q", d, shoff + 32)[0]
        self.sections = []
        for i in range(shnum):
            name, stype, flags, addr, offset, size, link, info, align, entsize = struct.unpack_from(
                "<IIQQQQIIQQ", d, shoff + i * 64)
            self.sections.append(dict(index=i, name_offset=name, type=stype, flags=flags, addr=addr,
                                      offset=offset, size=size, link=link, info=info, entsize=entsize))
        names = self.sections[shstrndx]
        for s in self.sections:
            s["name"] = self.string(names["offset"] + s["name_offset"])

    def string(self, offset):
        end = self.data.index(b"\0", offset)
        return self.data[offset:end].decode("utf-8", "replace")

    def contents(self, section):
        if section["type"] == SHT_NOBITS:
            return bytes(section["size"])
        return self.data[section["offset"]:section["offset"] + section["size"]]

    def symbol_value(self, symbol_name):
        """Returns the value of the first symbol named `symbol_name`, or None."""
        for s in self.sections:
            if s["type"] != SHT_SYMTAB:
                continue
            strtab = self.sections[s["link"]]
            for i in range(s["size"] // 24):
                name, info, other, shndx, value = struct.unpack_from("<IBBHQ", self.data, s["offset"] + i * 24)
                if name and self.string(strtab["offset"] + name) == symbol_name:
                    return value
        return None

    def symbol_names(self, symtab_index):
        table = self.sections[symtab_index]
        strtab = self.sections[table["link"]]
        names = []
        for i in range(table["size"] // 24):
            name, info, other, shndx = struct.unpack_from("<IBBH", self.data, table["offset"] + i * 24)
            if name == 0 and info & 0xF == 3 and shndx < len(self.sections):
                names.append(self.sections[shndx]["name"])
            else:
                names.append(self.string(strtab["offset"] + name))
        return names

    def relocations(self):
        """Yields (target section, offset, type, symbol name, addend) for every RELA entry."""
        for s in self.sections:
            if s["type"] != SHT_RELA:
                continue
            names = self.symbol_names(s["link"])
            target = self.sections[s["info"]]
            for i in range(s["size"] // 24):
                offset, info, addend = struct.unpack_from("<QQq", self.data, s["offset"] + i * 24)
                yield target, offset, info & 0xFFFFFFFF, names[info >> 32], addend


class Memory:
    """Bytes by address, from spans of (address, bytes)."""

    def __init__(self):
        self.spans = []

    def add(self, address, data):
        self.spans.append((address, data))

    def read(self, address, size):
        for start, data in self.spans:
            if start <= address and address + size <= start + len(data):
                return data[address - start:address - start + size]
        return None


# ---------------------------------------------------------------------------------------------
# The map written by modkit link (docs/link-map.md)


def read_map(path):
    result = dict(sections=[], symbols={}, got=None, stubs=None, module=None, commons={}, base=None, size=None)
    with open(path) as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            kind = words[0]
            if kind == "base":
                result["base"] = int(words[1], 16)
            elif kind == "size":
                result["size"] = int(words[1], 16)
            elif kind == "section":
                result["sections"].append(dict(address=int(words[1], 16), size=int(words[2], 16), file=words[3],
                                                index=int(words[4]), name=words[5]))
            elif kind in ("got", "stubs", "module"):
                result[kind] = (int(words[1], 16), int(words[2], 16))
            elif kind == "common":
                result["commons"][words[3]] = (int(words[1], 16), int(words[2], 16))
            elif kind == "symbol":
                result["symbols"][words[2]] = int(words[1], 16)
    return result


def write_unmerged_copy(obj, path):
    """Writes `obj` with SHF_MERGE and SHF_STRINGS cleared, so that ld.lld keeps every string and
    constant where the object has it, as ModKit does, instead of merging duplicates."""
    data = bytearray(obj.data)
    shoff = struct.unpack_from("<Q", data, 40)[0]
    for s in obj.sections:
        if s["flags"] & (SHF_MERGE | SHF_STRINGS) and s["flags"] & SHF_ALLOC:
            struct.pack_into("<Q", data, shoff + s["index"] * 64 + 8, s["flags"] & ~(SHF_MERGE | SHF_STRINGS))
    with open(path, "wb") as f:
        f.write(data)


def linker_script(link_map, inputs):
    """Returns a linker script that puts each section, the GOT and the COMMON symbols at the
    map's addresses, in address order. `inputs` maps the object names in the map to the files given to ld.lld."""
    # NOTE: a linker script names input sections by file and name, so when one object has two
    # loaded sections of the same name, ld.lld puts both where the first one goes, one after
    # the other. Unless ModKit placed them the same way, fields in the second show as
    # differences. GCC and Clang repeat a section name within an object only in section groups.
    placements = []
    for number, s in enumerate(link_map["sections"]):
        if s["name"] == ".eh_frame":
            continue
        placements.append((s["address"], '.modkit.%d 0x%x : { KEEP("%s"(%s)) }' % (number, s["address"], inputs[s["file"]], s["name"])))
    # ld.lld merges every .eh_frame into one section that it rewrites, so it cannot follow
    # ModKit's placement of each object's .eh_frame. FDEs are compared by the code they cover,
    # which does not depend on where .eh_frame is, so it goes 16 MiB past the image.
    end = (link_map["base"] + link_map["size"] + 0xFFFFF) & ~0xFFFFF
    placements.append((end + 0x1000000, ".eh_frame 0x%x : { *(.eh_frame) }" % (end + 0x1000000)))
    if link_map["got"]:
        placements.append((link_map["got"][0], ".got 0x%x : { *(.got) }" % link_map["got"][0]))
    # ld.lld cannot place COMMON symbols one by one, so all of them go where ModKit put the
    # first. Where the two orders differ, references to COMMON symbols show as differences.
    if link_map["commons"]:
        address = min(address for address, _ in link_map["commons"].values())
        placements.append((address, ".modkit.common 0x%x : { *(COMMON) }" % address))
    lines = ["SECTIONS {"] + ["  " + text for _, text in sorted(placements)] + ["}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Decoding branches, stubs and thunks


def signed(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def branch_destination(machine, rtype, field, place, addend):
    """Returns the address a relocated call or jump reaches, before any stub."""
    if machine == EM_X86_64:
        return (place + signed(int.from_bytes(field, "little"), 32) - addend) & (2**64 - 1)
    if rtype == 314:  # R_AARCH64_PLT32: a 32-bit offset in data
        return (place + signed(int.from_bytes(field, "little"), 32) - addend) & (2**64 - 1)
    instruction = int.from_bytes(field, "little")
    return (place + 4 * signed(instruction & 0x3FFFFFF, 26) - addend) & (2**64 - 1)


def through_stub(machine, memory, address):
    """Returns the final target of a stub or thunk at `address`, or `address` when there is none."""
    if machine == EM_X86_64:
        code = memory.read(address, 14)
        if code and code[:6] == b"\xff\x25\x00\x00\x00\x00":
            return int.from_bytes(code[6:14], "little")
        return address
    code = memory.read(address, 16)
    if not code:
        return address
    first, second = struct.unpack_from("<II", code)
    if first == 0x58000050 and second == 0xD61F0200:  # ldr x16, #8; br x16; .quad target
        return int.from_bytes(code[8:16], "little")
    if first & 0xFC000000 == 0x14000000:  # b target
        return (address + 4 * signed(first & 0x3FFFFFF, 26)) & (2**64 - 1)
    if first & 0x9F00001F == 0x90000010 and second & 0xFFC003FF == 0x91000210:  # adrp x16; add x16, x16
        page = signed(((first >> 29) & 3) | (((first >> 5) & 0x7FFFF) << 2), 21) << 12
        return ((address & ~0xFFF) + page + ((second >> 10) & 0xFFF)) & (2**64 - 1)
    return address


def got_relative_target(kind, field, base, memory):
    """Returns what a GOT-base-relative field stands for, independent of where the GOT base is:
    the address it names, the place-relative part, or the contents of the GOT entry it names."""
    value = signed(int.from_bytes(field, "little"), 8 * len(field))
    if kind in ("address", "branch"):
        return (value + base) & (2**64 - 1)
    if kind == "place":
        return (value - base) & (2**64 - 1)
    entry = memory.read((value + base) & (2**64 - 1), 8)
    return int.from_bytes(entry, "little") if entry else None


# ---------------------------------------------------------------------------------------------
# .eh_frame


def read_encoded(data, position, encoding, address):
    """Reads a DW_EH_PE-encoded pointer and returns (value, new position)."""
    if encoding == 0xFF:
        return None, position
    form = encoding & 0x0F
    sizes = {0x00: ("<Q", 8), 0x02: ("<H", 2), 0x03: ("<I", 4), 0x04: ("<Q", 8),
             0x0A: ("<h", 2), 0x0B: ("<i", 4), 0x0C: ("<q", 8)}
    if form not in sizes:
        raise ValueError("unsupported pointer encoding 0x%x" % encoding)
    fmt, size = sizes[form]
    value = struct.unpack_from(fmt, data, position)[0]
    if encoding & 0x70 == 0x10:  # DW_EH_PE_pcrel
        value += address + position
    return value & (2**64 - 1), position + size


def read_uleb(data, position):
    result, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, position


def frame_descriptions(data, address):
    """Returns the (start, length) of the code each FDE covers, from an .eh_frame at `address`."""
    encodings = {}
    result = []
    position = 0
    while position + 4 <= len(data):
        length = struct.unpack_from("<I", data, position)[0]
        if length == 0:
            break
        start = position
        body = position + 4
        cie_pointer = struct.unpack_from("<I", data, body)[0]
        if cie_pointer == 0:
            encodings[start] = cie_pointer_encoding(data, body + 4)
        else:
            cie = body - cie_pointer
            encoding = encodings.get(cie)
            if encoding is None:
                encoding = cie_pointer_encoding(data, cie + 8)
                encodings[cie] = encoding
            pc_begin, after = read_encoded(data, body + 4, encoding, address)
            pc_range, _ = read_encoded(data, after, encoding & 0x0F, address)
            result.append((pc_begin, pc_range))
        position = body + length
    return result


def cie_pointer_encoding(data, position):
    """Returns the FDE pointer encoding of the CIE whose version byte is at `position`."""
    position += 1  # version
    end = data.index(b"\0", position)
    augmentation = data[position:end].decode()
    position = end + 1
    _, position = read_uleb(data, position)  # code alignment
    _, position = read_uleb(data, position)  # data alignment (SLEB, same length)
    position += 1  # return address register (version 1)
    if not augmentation.startswith("z"):
        return 0x00
    _, position = read_uleb(data, position)
    for letter in augmentation[1:]:
        if letter == "R":
            return data[position]
        if letter == "P":
            encoding = data[position]
            _, position = read_encoded(data, position + 1, encoding & 0x0F, 0)
        elif letter == "L":
            position += 1
    return 0x00


# ---------------------------------------------------------------------------------------------
# One object


def link_and_compare(paths, modkit, lld, work, shown, start_map=None):
    """Links `paths` as one module with both linkers and prints the comparison. Returns whether
    every relocation and FDE matched."""
    objects = [Elf(path) for path in paths]
    label = " ".join(paths)
    machine = objects[0].machine
    target = {EM_X86_64: "x86_64", EM_AARCH64: "aarch64"}.get(machine)
    if target is None:
        print("%s: unsupported machine %d" % (label, machine))
        return False
    map_path = os.path.join(work, "link.map")
    image_path = os.path.join(work, "modkit.img")
    script_path = os.path.join(work, "link.lds")
    lld_path = os.path.join(work, "lld.elf")
    if start_map:
        shutil.copyfile(start_map, map_path)

    run([modkit, "link", "--target", target, "--map", map_path] + paths + ["-o", image_path])
    link_map = read_map(map_path)
    lld_inputs = {}
    for number, (path, obj) in enumerate(zip(paths, objects)):
        lld_inputs[path] = os.path.join(work, "input%d.o" % number)
        write_unmerged_copy(obj, lld_inputs[path])
    with open(script_path, "w") as f:
        f.write(linker_script(link_map, lld_inputs))
    # ld.lld defines _GLOBAL_OFFSET_TABLE_ itself and rejects a --defsym for it. A relocation
    # against it is still compared, and differs where lld's definition differs from ModKit's.
    defsyms = ["--defsym=%s=0x%x" % (name, address) for name, address in sorted(link_map["symbols"].items())
               if name != "_GLOBAL_OFFSET_TABLE_"]
    run([lld, "--no-relax", "-static", "-e", "0", "-T", script_path] + [lld_inputs[path] for path in paths]
        + ["-o", lld_path] + defsyms)

    ours = Memory()
    with open(image_path, "rb") as f:
        ours.add(link_map["base"], f.read())
    theirs = Memory()
    lld_elf = Elf(lld_path)
    for s in lld_elf.sections:
        if s["flags"] & SHF_ALLOC and s["size"] > 0:
            theirs.add(s["addr"], lld_elf.contents(s))

    placed = {(s["file"], s["index"]): s["address"] for s in link_map["sections"]}
    lld_got_base = lld_elf.symbol_value("_GLOBAL_OFFSET_TABLE_")
    stubs = link_map["stubs"]
    compared = differ = skipped = 0
    differences = []
    relocations = [(path, relocation) for path, obj in zip(paths, objects) for relocation in obj.relocations()]
    for path, (section, offset, rtype, symbol, addend) in relocations:
        if not section["flags"] & SHF_ALLOC or section["name"] == ".eh_frame":
            continue
        width = field_width(machine, rtype)
        if width == 0:
            continue
        address = placed.get((path, section["index"]))
        if address is None or width is None:
            skipped += 1
            continue
        place = address + offset
        mine, lld_field = ours.read(place, width), theirs.read(place, width)
        if mine is None or lld_field is None:
            skipped += 1
            continue
        compared += 1
        if mine == lld_field:
            continue
        branches = X86_64_BRANCHES if machine == EM_X86_64 else AARCH64_BRANCHES
        if rtype in branches:
            mine_target = branch_destination(machine, rtype, mine, place, addend)
            lld_target = branch_destination(machine, rtype, lld_field, place, addend)
            if stubs and stubs[0] <= mine_target < stubs[0] + stubs[1]:
                mine_target = through_stub(machine, ours, mine_target)
            lld_target = through_stub(machine, theirs, lld_target)
            if mine_target == lld_target:
                continue
        if machine == EM_X86_64 and rtype in X86_64_GOT_BASE_RELATIVE and lld_got_base is not None:
            mine_target = got_relative_target(X86_64_GOT_BASE_RELATIVE[rtype], mine, link_map["got"][0], ours)
            lld_target = got_relative_target(X86_64_GOT_BASE_RELATIVE[rtype], lld_field, lld_got_base, theirs)
            if stubs and stubs[0] <= mine_target < stubs[0] + stubs[1] and X86_64_GOT_BASE_RELATIVE[rtype] == "branch":
                mine_target = through_stub(machine, ours, mine_target)
            if mine_target == lld_target:
                continue
        differ += 1
        if len(differences) < shown:
            where = "%s:(%s+0x%x)" % (path, section["name"], offset) if len(paths) > 1 else "%s+0x%x" % (section["name"], offset)
            differences.append("  %s %s '%s': modkit %s, ld.lld %s" % (
                where, relocation_name(machine, rtype), symbol, mine.hex(), lld_field.hex()))

    eh_ok, eh_message = compare_eh_frame(objects, paths, placed, ours, lld_elf)
    total = compared + skipped
    coverage_ok = total == 0 or compared * 100 >= total * 95
    line = "%s: %d relocations compared, %d differ" % (label, compared, differ)
    if skipped:
        line += " (%d not compared)" % skipped
    print(line + "; " + eh_message)
    for text in differences:
        print(text)
    if not coverage_ok:
        print("  only %d of %d relocations could be compared; at least 95%% must be" % (compared, total))
    return differ == 0 and coverage_ok and eh_ok


def compare_eh_frame(objects, paths, placed, ours, lld_elf):
    """Checks that the FDEs in ModKit's and lld's .eh_frame cover the same code."""
    sections = [(path, s) for path, obj in zip(paths, objects) for s in obj.sections
                if s["name"] == ".eh_frame" and s["flags"] & SHF_ALLOC]
    if not sections:
        return True, "no .eh_frame"
    mine = []
    for path, s in sections:
        address = placed.get((path, s["index"]))
        data = ours.read(address, s["size"]) if address is not None else None
        if data is None:
            return False, ".eh_frame not placed by modkit"
        mine += frame_descriptions(data, address)
    lld_sections = [s for s in lld_elf.sections if s["name"] == ".eh_frame"]
    if not lld_sections:
        return False, ".eh_frame missing from the ld.lld output"
    theirs = []
    for s in lld_sections:
        theirs += frame_descriptions(lld_elf.contents(s), s["addr"])
    missing = sorted(set(mine) ^ set(theirs))
    if missing:
        first = missing[0]
        return False, ".eh_frame: %d FDEs, %d differ (first: code 0x%x+0x%x)" % (len(mine), len(missing), first[0], first[1])
    return True, ".eh_frame: %d FDEs match" % len(mine)


def run(command):
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise LinkFailure("%s failed with status %d:\n%s" % (os.path.basename(command[0]), result.returncode,
                                                                result.stdout.rstrip()))


class LinkFailure(Exception):
    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modkit", required=True, help="the modkit executable")
    parser.add_argument("--lld", required=True, help="the ld.lld executable")
    parser.add_argument("--show", type=int, default=10, help="differences to print per object (default 10)")
    parser.add_argument("--map", help="a link map to start from, with addresses for modkit link to take "
                                       "(one OBJECT, or --module)")
    parser.add_argument("--module", action="store_true",
                        help="link all OBJECTs together as one module instead of each on its own")
    parser.add_argument("objects", nargs="+", metavar="OBJECT")
    arguments = parser.parse_args()
    if arguments.map and len(arguments.objects) != 1 and not arguments.module:
        parser.error("--map needs exactly one OBJECT, or --module")

    groups = [arguments.objects] if arguments.module else [[path] for path in arguments.objects]
    ok = True
    for paths in groups:
        with tempfile.TemporaryDirectory(prefix="modkit-oracle-") as work:
            try:
                ok = link_and_compare(paths, arguments.modkit, arguments.lld, work, arguments.show, arguments.map) and ok
            except LinkFailure as failure:
                print("%s: %s" % (" ".join(paths), failure))
                ok = False
            except OSError as error:
                print("%s: cannot read %s: %s" % (" ".join(paths), error.filename, error.strerror))
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
