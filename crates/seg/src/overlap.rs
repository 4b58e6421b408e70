//! Outputs never overlap inputs: before a command writes anything, every file it will write is
//! compared with every file it reads (after resolving links and `..`), and an output folder
//! with the input folder. A clash is an error naming both, so a prediction can never replace
//! the image it was made from.

use std::path::{Path, PathBuf};

/// `path` with its links and `..` resolved: the path itself when it exists, else its nearest
/// existing ancestor resolved with the rest appended.
pub fn resolved(path: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    let mut rest = Vec::new();
    let mut current = path.to_owned();
    loop {
        match std::fs::canonicalize(&current) {
            Ok(real) => return rest.iter().rev().fold(real, |p: PathBuf, part: &std::ffi::OsString| p.join(part)),
            Err(_) => match (current.file_name().map(ToOwned::to_owned), current.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    current = if parent.as_os_str().is_empty() { PathBuf::from(".") } else { parent.to_owned() };
                }
                _ => return path.to_owned(),
            },
        }
    }
}

/// Refuses `outputs` (files to be written) that are one of `inputs` (files read), naming both.
pub fn refuse_overlap(inputs: &[PathBuf], outputs: &[PathBuf]) -> Result<(), String> {
    let inputs: std::collections::HashMap<PathBuf, &PathBuf> = inputs.iter().map(|p| (resolved(p), p)).collect();
    for output in outputs {
        if let Some(input) = inputs.get(&resolved(output)) {
            return Err(format!(
                "the output {} would overwrite the input {}: write the outputs to another folder",
                output.display(),
                input.display()
            ));
        }
    }
    Ok(())
}

/// Refuses an output folder `out` that is the input folder `input`, naming both.
pub fn refuse_same_folder(input: &Path, out: &Path) -> Result<(), String> {
    if input.is_dir() && resolved(input) == resolved(out) {
        return Err(format!(
            "--out {} is the --input folder {}: the outputs would be written among (and over) the inputs; \
             choose another folder",
            out.display(),
            input.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_that_are_inputs_are_refused() {
        let dir = std::env::temp_dir().join(format!("adl-overlap-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("in/sub")).unwrap();
        std::fs::write(dir.join("in/x.png"), b"x").unwrap();
        let input = vec![dir.join("in/x.png")];
        let e = refuse_overlap(&input, &[dir.join("in/sub/../x.png")]).unwrap_err();
        assert!(e.contains("would overwrite the input") && e.contains("x.png"), "{e}");
        assert!(refuse_overlap(&input, &[dir.join("out/x.png")]).is_ok(), "an output that does not exist yet");
        assert!(refuse_same_folder(&dir.join("in"), &dir.join("in/sub/..")).is_err());
        assert!(refuse_same_folder(&dir.join("in"), &dir.join("out")).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
