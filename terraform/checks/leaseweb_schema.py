#!/usr/bin/env python3
"""Checks terraform/leaseweb against the Leaseweb provider's schema (the provider itself cannot
be installed here, so `terraform validate` cannot run on that tree).

Usage: leaseweb_schema.py SCHEMA_JSON DIR [DIR ...]

For every `resource` and `data` block whose type starts with leaseweb_:
  - the type exists in the schema;
  - every argument exists and is writable (required or optional; computed-only is read-only);
  - nested attributes are written with '=' (the provider defines no blocks);
  - every required attribute is set, at each nesting level actually written;
  - literal values respect `allowed`, `between`, `regex`, `length_at_least`, `size_at_least`;
  - `conflicts_with` pairs are not both set, `also_requires` partners are present.
Also: the provider block's arguments, and required_providers pinning leaseweb/leaseweb to the
schema's version. Prints every problem, then "N passed, M failed" (blocks checked).
"""

import json
import re
import sys
from pathlib import Path

import hcl2

SCHEMA_PATH, TREES = sys.argv[1], [Path(d) for d in sys.argv[2:]]
S = json.load(open(SCHEMA_PATH))
META = S["conventions"]["terraform_meta_arguments"]
VERSION = S["source"]["version"]


def unquote(v):
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1]
    return v


def is_expression(v):
    """A value Terraform computes (reference, function call, template): not checkable here."""
    if isinstance(v, str):
        return "${" in v or not (v.startswith('"') or re.fullmatch(r"-?\d+(\.\d+)?|true|false|null", v))
    return False


def literal(v):
    """The Python value of a literal HCL value, or None when it is an expression."""
    if isinstance(v, (int, float, bool)):
        return v
    if isinstance(v, str) and not is_expression(v):
        u = unquote(v)
        return u
    return None


def is_block(v):
    return isinstance(v, list) and v and isinstance(v[0], dict) and v[0].get("__is_block__")


def check_validators(where, name, value, attr, errs):
    lit = literal(value)
    if "allowed" in attr and lit is not None and str(lit) not in map(str, attr["allowed"]):
        errs.append(f"{where}: {name} = {lit!r} is not one of {attr['allowed']}")
    for v in attr.get("validators", []):
        kind = v["kind"]
        if kind == "between" and isinstance(lit, (int, float)) and not v["min"] <= lit <= v["max"]:
            errs.append(f"{where}: {name} = {lit} outside {v['min']}..{v['max']}")
        elif kind == "regex" and isinstance(lit, str) and not re.search(v["pattern"], lit):
            errs.append(f"{where}: {name} = {lit!r} does not match {v['pattern']}")
        elif kind == "length_at_least" and isinstance(lit, str) and len(lit) < v["value"]:
            errs.append(f"{where}: {name} shorter than {v['value']}")
        elif kind == "size_at_least" and isinstance(value, list) and len(value) < v["value"]:
            errs.append(f"{where}: {name} needs at least {v['value']} elements")


def check_body(where, body, attrs, skip, errs):
    written = set()
    for name, value in body.items():
        if name.startswith("__") or name in skip:
            continue
        written.add(name)
        attr = attrs.get(name)
        if attr is None:
            errs.append(f"{where}: unknown argument {name}")
            continue
        if not (attr["required"] or attr["optional"]):
            errs.append(f"{where}: {name} is read-only (computed)")
            continue
        if is_block(value):
            errs.append(f"{where}: {name} is a nested attribute: write '{name} = {{ ... }}', not a block")
            continue
        if "attributes" in attr:
            items = [value] if attr.get("nesting") == "single" else value if isinstance(value, list) else []
            for i, item in enumerate(items):
                if isinstance(item, dict):
                    check_body(f"{where}.{name}" + (f"[{i}]" if attr.get("nesting") != "single" else ""),
                               item, attr["attributes"], (), errs)
        else:
            check_validators(where, name, value, attr, errs)
    for name, attr in attrs.items():
        if attr["required"] and name not in written:
            errs.append(f"{where}: required argument {name} is missing")
        for v in attr.get("validators", []):
            if name not in written:
                continue
            if v["kind"] == "conflicts_with":
                both = [p for p in v["paths"] if p in written]
                if both:
                    errs.append(f"{where}: {name} conflicts with {', '.join(both)}")
            if v["kind"] == "also_requires":
                missing = [p for p in v["paths"] if p not in written]
                if missing:
                    errs.append(f"{where}: {name} also requires {', '.join(missing)}")


def main():
    files = sorted(f for t in TREES for f in t.rglob("*.tf") if ".terraform" not in f.parts)
    if not files:
        print(f"no .tf files under {TREES}")
        return 1
    errs, blocks, bad_blocks = [], 0, 0
    pinned = False
    for path in files:
        doc = hcl2.load(open(path))
        for tf in doc.get("terraform", []):
            for req in tf.get("required_providers", []):
                lw = req.get("leaseweb")
                if lw:
                    source = unquote(lw.get("source", ""))
                    version = unquote(lw.get("version", ""))
                    if source != "leaseweb/leaseweb":
                        errs.append(f"{path}: leaseweb provider source is {source!r}, not leaseweb/leaseweb")
                    if VERSION not in version and VERSION.rsplit(".", 1)[0] not in version:
                        errs.append(f"{path}: leaseweb provider version {version!r} is not pinned to the "
                                    f"checked schema's {VERSION}")
                    pinned = True
        for prov in doc.get("provider", []):
            for name, body in prov.items():
                if unquote(name) == "leaseweb":
                    blocks += 1
                    before = len(errs)
                    check_body(f"{path}:provider.leaseweb", body, S["provider"]["attributes"], META["provider"], errs)
                    bad_blocks += len(errs) > before
        for kind, section in (("resource", "resources"), ("data", "data_sources")):
            for blk in doc.get(kind, []):
                for rtype, named in blk.items():
                    rtype = unquote(rtype)
                    if not rtype.startswith("leaseweb_"):
                        continue
                    for rname, body in named.items():
                        blocks += 1
                        before = len(errs)
                        where = f"{path}:{kind}.{rtype}.{unquote(rname)}"
                        if rtype not in S[section]:
                            errs.append(f"{where}: unknown {kind} type (not in provider {VERSION})")
                            bad_blocks += 1
                            continue
                        check_body(where, body, S[section][rtype]["attributes"], META[kind], errs)
                        bad_blocks += len(errs) > before
    if not pinned:
        errs.append("no required_providers entry for leaseweb")
    for e in errs:
        print("FAIL ", e)
    print(f"leaseweb schema {VERSION}: {blocks} blocks in {len(files)} files checked")
    print(f"leaseweb: {blocks - bad_blocks} passed, {bad_blocks} failed")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
