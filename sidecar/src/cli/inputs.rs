//! The files a batch command works on, and where each one's output goes: `optimize`'s
//! folder walk, its output names and its parallel jobs.
//!
//! * A folder is searched recursively (hidden entries and symlinked folders are skipped, so
//!   a walk always ends) for the image extensions; a file named directly is taken as it is.
//! * Each source writes under its path relative to the folder it was found in (a file named
//!   directly: its file name), so `img/a.jpg` and `img/old/a.jpg` never share an output
//!   folder. Two inputs that would are refused before any work starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Extensions a folder walk picks up (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "gif", "webp"];

/// One source file and the relative path its outputs are named after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    /// Relative to the folder given on the command line, or the bare file name.
    pub name: PathBuf,
}

/// Every source in `inputs`, sorted within each folder. `Err` names what cannot be read or
/// the two inputs whose outputs would collide.
pub fn collect(inputs: &[PathBuf]) -> Result<Vec<Input>, String> {
    let mut found = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut files = Vec::new();
            walk(input, &mut files).map_err(|e| format!("{}: {e}", input.display()))?;
            files.sort();
            for path in files {
                let name = path.strip_prefix(input).unwrap_or(&path).to_path_buf();
                found.push(Input { path, name });
            }
        } else if input.is_file() {
            let name = input
                .file_name()
                .map_or_else(|| input.clone(), PathBuf::from);
            found.push(Input {
                path: input.clone(),
                name,
            });
        } else {
            return Err(format!("{}: no such file or folder", input.display()));
        }
    }
    let mut seen: BTreeMap<&Path, &Path> = BTreeMap::new();
    for input in &found {
        if let Some(other) = seen.insert(&input.name, &input.path) {
            return Err(format!(
                "{} and {} would both write {}: optimize them in separate runs, or name a folder that holds both",
                other.display(),
                input.path.display(),
                input.name.display()
            ));
        }
    }
    Ok(found)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&path, files)?;
        } else if (kind.is_file() || (kind.is_symlink() && path.is_file())) && is_image_name(&path)
        {
            files.push(path);
        }
    }
    Ok(())
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// `jobs` threads (0: one per core) take `items` in order; the results come back in the
/// items' order. `done` is called after each item, from the thread that did it.
pub fn run_jobs<T: Sync, R: Send>(
    jobs: usize,
    items: &[T],
    work: impl Fn(&T) -> R + Sync,
    done: impl Fn(&T) + Sync,
) -> Vec<R> {
    let jobs = match jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() {
                    break;
                }
                let r = work(&items[i]);
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(r);
                }
                done(&items[i]);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_keep_the_input_order() {
        let items: Vec<u32> = (0..50).collect();
        let count = AtomicUsize::new(0);
        let out = run_jobs(
            4,
            &items,
            |i| i * 2,
            |_| {
                count.fetch_add(1, Ordering::Relaxed);
            },
        );
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(count.load(Ordering::Relaxed), 50);
        assert!(run_jobs(0, &Vec::<u32>::new(), |i| *i, |_| {}).is_empty());
    }
}
