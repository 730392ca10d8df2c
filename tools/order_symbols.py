"""Names the functions of a linkgate binary that ran, for lld's --symbol-ordering-file
(tools/order.sh). The release binary has no symbol table, so both sources name code by address;
MAP, the linker's map of that very binary (`-Wl,-Map`), turns each address into the symbol its
`.text.` section holds, the name the linker orders by.

  order_symbols.py callgrind MAP OBJECT FILE...   # functions that ran under callgrind, in order
  order_symbols.py faults MAP OBJECT PERF_SCRIPT  # code a native run faulted in (perf page-faults)

OBJECT is the binary's path. FILE is one of callgrind's dumps (compressed names or not), start-up
first. PERF_SCRIPT is `perf script --show-mmap-events -F addr` of a
`perf record -e page-faults -c 1 -d` run: code that runs natively but not under valgrind (SHA and
CRC instructions valgrind lacks, logging to a terminal)."""
import bisect, re, sys

# `.text.NAME`, or `.text.unlikely.NAME` for the code LLVM thinks cold: the symbol is NAME.
SECTION = re.compile(
    r"\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+\S+:\(\.text\.(?:unlikely\.|hot\.)?(\S+)\)$"
)
ENTRY = re.compile(r"^(ob|fn)=(?:\((\d+)\))?\s*(.*)$")
ADDRESS = re.compile(r"0x([0-9a-f]+)")
MMAP = re.compile(r"PERF_RECORD_MMAP2.*\[0x([0-9a-f]+)\(0x[0-9a-f]+\) @ 0 .*\]: \S+ (\S+)$")


class Map:
    def __init__(self, path):
        self.table = []
        for line in open(path, encoding="utf-8", errors="replace"):
            match = SECTION.match(line)
            if match:
                start, size, name = match.groups()
                self.table.append((int(start, 16), int(size, 16), name))
        self.table.sort()
        self.starts = [start for start, _, _ in self.table]
        self.names = {name for _, _, name in self.table}

    def at(self, address):
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0:
            start, size, name = self.table[i]
            if start <= address < start + size:
                return name
        return None


def callgrind_functions(path, obj):
    """The names callgrind gives the functions of OBJECT, in the order they appear."""
    names = {"ob": {}, "fn": {}}
    current_ob = None
    for line in open(path, encoding="utf-8", errors="replace"):
        match = ENTRY.match(line.rstrip("\n"))
        if not match:
            continue
        key, ident, text = match.groups()
        if ident is not None and text:
            names[key][ident] = text
        name = text or names[key].get(ident, "")
        if key == "ob":
            current_ob = name
        elif current_ob == obj and name:
            yield name


def from_callgrind(table, obj, files):
    for path in files:
        for function in callgrind_functions(path, obj):
            address = ADDRESS.match(function)
            if address:
                yield table.at(int(address.group(1), 16))
            elif function in table.names:
                yield function


def from_faults(table, obj, path):
    base = None
    for line in open(path, encoding="utf-8", errors="replace"):
        mmap = MMAP.search(line.rstrip("\n"))
        if mmap:
            if mmap.group(2) == obj:
                base = int(mmap.group(1), 16)
            continue
        fields = line.split()
        if base is not None and len(fields) == 1:
            yield table.at(int(fields[0], 16) - base)


def main():
    mode, table, obj, rest = sys.argv[1], Map(sys.argv[2]), sys.argv[3], sys.argv[4:]
    found = from_callgrind(table, obj, rest) if mode == "callgrind" else from_faults(table, obj, rest[0])
    seen = set()
    for name in found:
        if name and name not in seen:
            seen.add(name)
            print(name)


main()
