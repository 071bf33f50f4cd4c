//! Embeds `../migrations/NNNN_name.{up,down}.sql` into the crate so every binary carries the
//! schema it was built for. Refuses to build when a pair is incomplete or numbering has a gap.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"))
        .join("../migrations");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut found: BTreeMap<u32, (String, Option<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("migrations/ directory is readable") {
        let path = entry.expect("directory entry").path();
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .to_owned();
        let Some(stem) = file.strip_suffix(".sql") else {
            continue;
        };
        let (stem, is_up) = match (stem.strip_suffix(".up"), stem.strip_suffix(".down")) {
            (Some(s), _) => (s, true),
            (_, Some(s)) => (s, false),
            _ => panic!("migration {file}: name must end in .up.sql or .down.sql"),
        };
        let (num, name) = stem
            .split_once('_')
            .unwrap_or_else(|| panic!("migration {file}: expected NNNN_name"));
        assert!(
            num.len() == 4,
            "migration {file}: version must be four digits"
        );
        let version: u32 = num
            .parse()
            .unwrap_or_else(|_| panic!("migration {file}: bad version"));
        println!("cargo:rerun-if-changed={}", path.display());
        let slot = found
            .entry(version)
            .or_insert_with(|| (name.to_owned(), None, None));
        assert_eq!(
            slot.0, name,
            "migration {version}: up and down names differ"
        );
        if is_up {
            slot.1 = Some(path)
        } else {
            slot.2 = Some(path)
        }
    }
    let mut out = String::from("/// Migrations found in `migrations/` at build time, in order.\npub static EMBEDDED: &[Migration] = &[\n");
    for (i, (version, (name, up, down))) in found.iter().enumerate() {
        assert_eq!(
            *version as usize,
            i + 1,
            "migration numbering must start at 0001 without gaps"
        );
        let up = up
            .as_ref()
            .unwrap_or_else(|| panic!("migration {version} has no .up.sql"));
        let down = down
            .as_ref()
            .unwrap_or_else(|| panic!("migration {version} has no .down.sql"));
        writeln!(
            out,
            "    Migration {{ version: {version}, name: {name:?}, up: include_str!({up:?}), down: include_str!({down:?}) }},",
            up = up.canonicalize().expect("path"),
            down = down.canonicalize().expect("path"),
        )
        .expect("write to string");
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets this")).join("migrations.rs");
    std::fs::write(dest, out).expect("write generated migrations.rs");
}
