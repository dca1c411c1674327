//! Records the commit hoist is built from, for `hoist version`.

fn git(args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=HOIST_COMMIT={commit}");
    // Rebuilt when the checked-out commit moves. Git says where HEAD and the
    // branch refs live: in a worktree `.git` is a file, not the directory.
    let watched = [
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["rev-parse", "--git-common-dir"]).map(|dir| format!("{dir}/refs/heads")),
        git(&["rev-parse", "--git-common-dir"]).map(|dir| format!("{dir}/packed-refs")),
    ];
    for path in watched.into_iter().flatten() {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
