//! Repository rules checked as tests (STYLE S2, S36): crate dependency edges point one way,
//! every source module opens with a `//!` paragraph, and WAL and layer file I/O goes through
//! `runtime.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The allowed internal edges (dev-dependencies included). A new edge updates this table and
/// ARCHITECTURE.md in the same change.
const ALLOWED: &[(&str, &[&str])] = &[
    ("crypto", &[]),
    ("wal", &["crypto"]),
    ("cache", &["wal", "crypto"]),
    ("server", &["cache", "wal", "crypto"]),
    ("bench", &["server", "cache", "wal", "crypto"]),
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn crate_edges_point_one_way() {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let members: BTreeSet<String> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    for package in metadata["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        let permitted =
            allowed.get(name).unwrap_or_else(|| panic!("crate {name} is not in the edge table"));
        for dependency in package["dependencies"].as_array().unwrap() {
            let target = dependency["name"].as_str().unwrap();
            if members.contains(target) {
                assert!(
                    permitted.contains(&target),
                    "edge {name} -> {target} is not allowed (STYLE S2)"
                );
            }
        }
    }
}

#[test]
fn every_module_says_what_it_owns() {
    let root = workspace_root();
    let mut missing = Vec::new();
    for krate in ["server", "wal", "cache", "crypto", "bench"] {
        visit(&root.join(krate).join("src"), &mut |path| {
            let text = std::fs::read_to_string(path).unwrap();
            let is_test_file = path.file_name().is_some_and(|n| n == "tests.rs");
            if !is_test_file && !text.trim_start().starts_with("//!") {
                missing.push(path.display().to_string());
            }
        });
    }
    assert!(missing.is_empty(), "modules without a //! doc: {missing:?}");
}

fn visit(dir: &Path, on_file: &mut dyn FnMut(&Path)) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, on_file);
        } else if path.extension().is_some_and(|e| e == "rs") {
            on_file(&path);
        }
    }
}

/// All WAL and layer file I/O goes through `server/src/runtime.rs` (ARCHITECTURE.md,
/// durability invariants): the simulated disk of the crash tests (`server/src/sim.rs`) stands
/// in for the kernel there, so a direct `std::fs` or glommio file call in these modules would
/// be I/O the simulation never crashes, tears or fails.
#[test]
fn wal_and_layer_file_io_goes_through_the_runtime_module() {
    let src = workspace_root().join("server/src");
    let mut offenders = Vec::new();
    for file in ["wal_io.rs", "layer_io.rs", "store.rs"] {
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        for (index, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("std::fs::") || code.contains("glommio::io::") {
                offenders.push(format!("server/src/{file}:{}: {}", index + 1, line.trim()));
            }
        }
    }
    assert!(offenders.is_empty(), "file I/O outside runtime.rs:\n{}", offenders.join("\n"));
}
