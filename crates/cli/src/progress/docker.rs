//! `--progress=docker`: the status lines `docker pull` prints when its
//! output is not a terminal, on stdout, for tools and people that read
//! docker's output.
//!
//! ```text
//! Using default tag: latest
//! latest: Pulling from library/alpine
//! 4abcf2066143: Pulling fs layer
//! 4abcf2066143: Verifying Checksum
//! 4abcf2066143: Download complete
//! 4abcf2066143: Pull complete
//! Digest: sha256:…
//! Status: Downloaded newer image for alpine:latest
//! docker.io/library/alpine:latest
//! ```
//!
//! The wording and order follow moby: the docker CLI prints `Using default
//! tag: latest` when the reference names neither tag nor digest; the daemon
//! (`daemon/internal/distribution/pull_v2.go`, `xfer/download.go`) prints
//! `<tag>: Pulling from <repository path>` (for a digest reference the whole
//! normalized reference stands for the tag), then per layer only — never for
//! an index, manifest or config — with the layer's id, the first 12 hex
//! digits of its digest; at the end `Digest:`, `Status:`, and the CLI prints
//! the normalized reference. A non-terminal docker drops every message that
//! carries a byte count (`client/pkg/jsonmessage`: "disable progressbar in
//! non-terminal"), so its `Downloading` and `Extracting` lines never show;
//! neither do ours.
//!
//! How our events map:
//!
//! | event                                      | line                                   |
//! |--------------------------------------------|----------------------------------------|
//! | first `Resolving`, reference without tag   | `Using default tag: latest`            |
//! | `Resolved`                                 | `<tag>: Pulling from <path>`           |
//! | `Waiting` (layer, not stored)              | `<id>: Pulling fs layer`               |
//! | …and beyond the download limit             | `<id>: Waiting`                        |
//! | `Downloading`, `Extracting`                | (none, as in docker without a terminal)|
//! | `Retrying` (layer)                         | `<id>: Retrying in N second(s)`        |
//! | `Verifying` (layer)                        | `<id>: Verifying Checksum`             |
//! | `Done` (layer)                             | `<id>: Download complete`              |
//! | `LayerUnpacked`                            | `<id>: Pull complete`                  |
//! | `AlreadyExists` + `LayerAlreadyUnpacked`   | `<id>: Already exists`                 |
//! | `AlreadyExists` with `--no-unpack`         | `<id>: Already exists`                 |
//! | `Done` with `--no-unpack`                  | `<id>: Download complete`, `<id>: Pull complete` |
//! | `ImageDone`                                | `Digest: <digest>`, `Status: Downloaded newer image for <ref>` or `Status: Image is up to date for <ref>` |
//! | the result                                 | the normalized reference               |
//!
//! Notes on the mapping:
//!
//! - The engine announces every config and layer with `Waiting` at once,
//!   then reports `AlreadyExists` for the stored ones before any download
//!   event. So the `Waiting` burst is held until the first other event, and
//!   then stored layers are left out of `Pulling fs layer` (docker prints
//!   only `Already exists` for them) and the layers past the first
//!   `--max-concurrent-downloads` blobs to download (config included: the
//!   engine's limit counts it) get `<id>: Waiting`, the ones docker's
//!   transfer manager would hold back.
//! - With unpacking, a stored layer is `Already exists` only once its
//!   snapshot is known to exist (`LayerAlreadyUnpacked`); a stored layer
//!   that still had to be unpacked ends with `Pull complete` alone.
//! - `Retrying` rounds the engine's sub-second delay up to whole seconds,
//!   the unit docker prints.
//! - The result is the normalized reference alone on stdout, which replaces
//!   the `<name> <digest>` line of the other forms, as `docker pull` ends.

#![allow(clippy::print_stdout, reason = "the docker renderer prints progress")]

use hoist_engine::{BlobKind, Event, Pulled};
use hoist_oci::{Digest, Reference};

use super::{PullContext, Renderer};

/// What docker would know of one config or layer.
struct Leaf {
    digest: Digest,
    kind: BlobKind,
    /// `AlreadyExists` arrived: the blob was stored before this pull.
    stored: bool,
}

/// The docker renderer.
pub(crate) struct Docker {
    context: PullContext,
    /// Configs and layers in the order the engine announced them.
    leaves: Vec<Leaf>,
    /// A `Waiting` burst is held until the first event after it.
    holding: bool,
    said_default_tag: bool,
}

/// Docker's layer id: the first 12 hex digits of the digest.
fn short_id(digest: &Digest) -> String {
    digest.digest().chars().take(12).collect()
}

/// Whether the reference as typed names neither a tag nor a digest.
fn is_name_only(typed: &str) -> bool {
    let last = typed.rsplit('/').next().unwrap_or(typed);
    !typed.contains('@') && !last.contains(':')
}

fn say(id: &str, status: &str) {
    println!("{id}: {status}");
}

impl Docker {
    pub(crate) fn new(context: PullContext) -> Docker {
        Docker {
            context,
            leaves: Vec::new(),
            holding: false,
            said_default_tag: false,
        }
    }

    fn leaf(&mut self, digest: &Digest) -> Option<&mut Leaf> {
        self.leaves.iter_mut().find(|leaf| &leaf.digest == digest)
    }

    fn is_layer(&self, digest: &Digest) -> bool {
        self.leaves
            .iter()
            .any(|leaf| &leaf.digest == digest && leaf.kind == BlobKind::Layer)
    }

    /// Prints what the held `Waiting` burst means now that the stored blobs
    /// are known.
    fn release(&mut self) {
        if !self.holding {
            return;
        }
        self.holding = false;
        for leaf in &self.leaves {
            if leaf.kind != BlobKind::Layer {
                continue;
            }
            if !leaf.stored {
                say(&short_id(&leaf.digest), "Pulling fs layer");
            } else if !self.context.unpack {
                say(&short_id(&leaf.digest), "Already exists");
            }
        }
        let limit = self.context.max_concurrent_downloads.max(1);
        for leaf in self.leaves.iter().filter(|leaf| !leaf.stored).skip(limit) {
            if leaf.kind == BlobKind::Layer {
                say(&short_id(&leaf.digest), "Waiting");
            }
        }
    }
}

impl Renderer for Docker {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Waiting { digest, kind, .. } => {
                self.leaves.push(Leaf {
                    digest: digest.clone(),
                    kind: *kind,
                    stored: false,
                });
                self.holding = true;
                return;
            }
            Event::AlreadyExists { digest, .. } => {
                let holding = self.holding;
                let unpack = self.context.unpack;
                let Some(leaf) = self.leaf(digest) else {
                    // An index or manifest: docker shows none.
                    return;
                };
                leaf.stored = true;
                // After the burst (another process stored it meanwhile):
                // say so now, unless the unpack outcome decides.
                if !holding && !unpack && leaf.kind == BlobKind::Layer {
                    say(&short_id(digest), "Already exists");
                }
                return;
            }
            _ => self.release(),
        }
        match event {
            Event::Resolving { .. }
                if !self.said_default_tag && is_name_only(&self.context.reference) =>
            {
                self.said_default_tag = true;
                println!("Using default tag: latest");
            }
            Event::Resolved { reference, .. } => {
                let Ok(reference) = Reference::parse(reference) else {
                    return;
                };
                let tag_or_digest = match (reference.digest(), reference.tag()) {
                    (None, Some(tag)) => tag.to_string(),
                    _ => reference.to_string(),
                };
                println!("{tag_or_digest}: Pulling from {}", reference.repository());
            }
            Event::Retrying { digest, delay, .. } if self.is_layer(digest) => {
                let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
                let seconds = seconds.max(1);
                let plural = if seconds == 1 { "" } else { "s" };
                say(
                    &short_id(digest),
                    &format!("Retrying in {seconds} second{plural}"),
                );
            }
            Event::Verifying {
                digest,
                kind: BlobKind::Layer,
            } => say(&short_id(digest), "Verifying Checksum"),
            Event::Done {
                digest,
                kind: BlobKind::Layer,
                ..
            } => {
                say(&short_id(digest), "Download complete");
                if !self.context.unpack {
                    say(&short_id(digest), "Pull complete");
                }
            }
            Event::LayerUnpacked { digest, .. } => say(&short_id(digest), "Pull complete"),
            Event::LayerAlreadyUnpacked { digest, .. } => {
                say(&short_id(digest), "Already exists");
            }
            Event::ImageDone {
                name,
                digest,
                up_to_date,
            } => {
                println!("Digest: {digest}");
                let shown = Reference::parse(name).map_or_else(|_| name.clone(), |r| r.familiar());
                if *up_to_date {
                    println!("Status: Image is up to date for {shown}");
                } else {
                    println!("Status: Downloaded newer image for {shown}");
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, pulled: &Pulled) {
        self.release();
        println!("{}", pulled.name);
    }

    fn fail(&mut self, _error: &anyhow::Error) {
        self.release();
    }

    fn interrupt(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_only_references() {
        assert!(is_name_only("alpine"));
        assert!(is_name_only("127.0.0.1:5000/app"));
        assert!(!is_name_only("127.0.0.1:5000/app:1.0"));
        assert!(!is_name_only("alpine:3"));
        assert!(!is_name_only("alpine@sha256:abc"));
    }
}
