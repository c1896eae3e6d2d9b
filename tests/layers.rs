//! The layers `lib.rs` lists point down: no module's code (its tests apart) names a module of
//! a higher layer. Read from the sources, so a new `crate::` path that reaches up fails here.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module and its layer, as `lib.rs` lists them.
const LAYERS: &[(&str, u8)] = &[
    ("proto", 1),
    ("rpc", 1),
    ("error", 1),
    ("retry", 1),
    ("table_ref", 1),
    ("values", 2),
    ("schema", 2),
    ("encode", 2),
    ("client", 3),
    ("rest", 3),
    ("object_storage", 3),
    ("options", 4),
    ("load", 4),
    ("checkpoint", 4),
    ("tables", 4),
    ("datafusion", 5),
    ("ballista", 5),
    ("server", 6),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, layer)| *layer)
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules a source names as `crate::<module>`, up to its unit tests.
fn named_modules(source: &str) -> BTreeSet<String> {
    let code = source.split("#[cfg(test)]\nmod tests").next().unwrap_or(source);
    code.match_indices("crate::")
        .map(|(at, _)| {
            code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn every_module_uses_only_its_own_layer_and_the_ones_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut checked = 0;
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("below src");
        let top = relative.components().next().expect("a first component");
        let module = top.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" || module == "bin" || relative.ends_with("tests.rs") {
            continue;
        }
        let own = layer(&module).unwrap_or_else(|| panic!("{module} is in no layer: add it to lib.rs and here"));
        let source = fs::read_to_string(file).expect("a readable source");
        for named in named_modules(&source) {
            if let Some(theirs) = layer(&named)
                && theirs > own
            {
                upward.push(format!(
                    "{} ({module}, layer {own}) uses {named} (layer {theirs})",
                    relative.display()
                ));
            }
        }
        checked += 1;
    }
    assert!(checked > 50, "only {checked} sources read from {}", src.display());
    assert!(upward.is_empty(), "layers reaching up:\n{}", upward.join("\n"));
}

#[test]
fn the_scan_sees_paths_and_stops_at_unit_tests() {
    let source =
        "use crate::load::Loader;\nfn f() { crate::server::x(); }\n#[cfg(test)]\nmod tests { use crate::ballista; }";
    let named: Vec<String> = named_modules(source).into_iter().collect();
    assert_eq!(named, ["load", "server"]);
}
