//! The dependency rule, as a test: every arrow points down the pipeline. A module may use the
//! ones on lower floors and its own submodules, never one on its own floor or above (a change
//! there could not break it, and a cycle cannot form). ARCHITECTURE.md "Layers" says why each
//! module sits where it does.

/// Floors, bottom up. A module imports only modules on lower floors.
pub const FLOORS: &[&[&str]] = &[
    &["error"],
    // Ground: what everything says, writes and hides.
    &["console", "atomic", "process", "volatile", "tool"],
    &["redact"],
    &["server"],
    &["snapshot"],
    &["restore", "diff", "migrate"],
    &["expect"],
    &["baseline"],
    &["report"],
    &["cli"],
    &["pipeline"],
];

#[cfg(test)]
mod tests {
    use super::FLOORS;
    use std::path::Path;

    fn floor(module: &str) -> Option<usize> {
        FLOORS.iter().position(|f| f.contains(&module))
    }

    /// The top-level modules a source file names: `crate::x` anywhere, and every item of a
    /// `use crate::{a, b::c}` group.
    fn imports(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let (mut depth, mut item_start, mut items) = (0, 0, Vec::new());
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            items.push(&group[item_start..i]);
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            items.push(&group[item_start..i]);
                            item_start = i + 1;
                        }
                        _ => {}
                    }
                }
                for item in items {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.push(name);
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                found.push(name);
            }
        }
        found
    }

    /// Every `.rs` file under `dir`, with the top-level module it belongs to.
    fn sources(dir: &Path, module: Option<&str>, out: &mut Vec<(String, std::path::PathBuf)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let owner = module.map(str::to_string).unwrap_or(name.clone());
            if path.is_dir() {
                sources(&path, Some(&owner), out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push((owner, path));
            }
        }
    }

    #[test]
    fn every_import_points_down() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, None, &mut files);
        let mut wrong = Vec::new();
        for (module, path) in &files {
            // The crate root, and the test-only modules (the rule itself, the mutations of the
            // readers' property tests), may use anything.
            if matches!(module.as_str(), "lib" | "main" | "layers" | "mutate") {
                continue;
            }
            let own = floor(module)
                .unwrap_or_else(|| panic!("module {module} has no floor in layers::FLOORS"));
            let text = std::fs::read_to_string(path).unwrap();
            for used in imports(&text) {
                if used == *module || used == "mutate" {
                    continue;
                }
                let theirs = floor(&used).unwrap_or_else(|| {
                    panic!("{} uses crate::{used}, which has no floor", path.display())
                });
                if theirs >= own {
                    wrong.push(format!(
                        "{} ({module}, floor {own}) uses crate::{used} (floor {theirs})",
                        path.display()
                    ));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "imports pointing up or sideways:\n{}",
            wrong.join("\n")
        );
    }

    #[test]
    fn the_import_reader_sees_groups_and_paths() {
        let text =
            "use crate::{baseline::{self, Volatile}, cli::Plan};\nlet x = crate::report::note(y);";
        assert_eq!(imports(text), ["baseline", "cli", "report"]);
        // And it catches an upward import: report is above server.
        assert!(floor("report") > floor("server"));
    }
}
