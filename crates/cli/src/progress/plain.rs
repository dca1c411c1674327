//! `--progress=plain`: one line per state change on stderr, no escape codes,
//! for CI logs and pipes (the default when stderr is not a terminal).
//!
//! Every line names the blob by its role (padded to 8 columns) and full
//! digest, the way `ctr` lists them:
//!
//! ```text
//! 127.0.0.1:5000/app:1.0: resolving
//! 127.0.0.1:5000/app:1.0: resolved sha256:…
//! manifest sha256:…: done (1.2kB)
//! layer    sha256:…: waiting (3.4MB)
//! layer    sha256:…: downloading 1.2MB/3.4MB
//! layer    sha256:…: from 127.0.0.1:5000
//! layer    sha256:…: retrying (attempt 2, from byte 1048576)
//! layer    sha256:…: verifying
//! layer    sha256:…: done (3.4MB)
//! layer    sha256:…: already exists
//! unpack   sha256:…: extracting 1.2MB/3.4MB
//! unpack   sha256:…: done (snapshot sha256:…)
//! unpack   sha256:…: already unpacked
//! 127.0.0.1:5000/app:1.0: image sha256:… saved
//! ```
//!
//! Byte counts are sparse: a `downloading` or `extracting` line is printed
//! when the blob crosses another tenth of its size, or when
//! [`QUIET_PERIOD`] passed since its last line, and never for the last
//! bytes (`verifying` or `done` follows).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hoist_engine::{BlobKind, Event, Pulled};
use hoist_oci::Digest;

use super::{Renderer, human_size, kind_name, result_lines};

/// Writes one line to stderr in one `write`: `eprintln!` makes one per
/// piece of the format (about 19 per layer of a warm pull), and panics if
/// stderr is gone, where a progress line is not worth failing a pull for.
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    }};
}

/// A blob that advances slowly still gets a byte-count line this often.
const QUIET_PERIOD: Duration = Duration::from_secs(5);

/// Where a blob's last byte-count line was.
struct Sparse {
    tenth: u64,
    at: Instant,
}

/// The plain renderer.
pub(crate) struct Plain {
    kinds: HashMap<Digest, BlobKind>,
    downloads: HashMap<Digest, Sparse>,
    extracts: HashMap<Digest, Sparse>,
}

impl Plain {
    pub(crate) fn new() -> Plain {
        Plain {
            kinds: HashMap::new(),
            downloads: HashMap::new(),
            extracts: HashMap::new(),
        }
    }

    fn kind(&self, digest: &Digest) -> &'static str {
        self.kinds
            .get(digest)
            .map_or("blob", |kind| kind_name(*kind))
    }
}

/// Whether a byte count is worth a line, updating the blob's record.
fn due(seen: &mut HashMap<Digest, Sparse>, digest: &Digest, current: u64, total: u64) -> bool {
    if total == 0 || current >= total {
        return false;
    }
    let tenth = current * 10 / total;
    let now = Instant::now();
    match seen.get_mut(digest) {
        Some(last) if tenth <= last.tenth && now.duration_since(last.at) < QUIET_PERIOD => false,
        Some(last) => {
            *last = Sparse { tenth, at: now };
            true
        }
        None => {
            seen.insert(digest.clone(), Sparse { tenth, at: now });
            true
        }
    }
}

impl Renderer for Plain {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Resolving { reference } => say!("{reference}: resolving"),
            Event::Resolved {
                reference,
                descriptor,
            } => say!("{reference}: resolved {}", descriptor.digest()),
            Event::Waiting { digest, kind, size } => {
                self.kinds.insert(digest.clone(), *kind);
                say!(
                    "{:<8} {digest}: waiting ({})",
                    kind_name(*kind),
                    human_size(*size)
                );
            }
            Event::Downloading {
                digest,
                kind,
                current,
                total,
            } if due(&mut self.downloads, digest, *current, *total) => say!(
                "{:<8} {digest}: downloading {}/{}",
                kind_name(*kind),
                human_size(*current),
                human_size(*total)
            ),
            Event::Fetching { digest, kind, host } => {
                say!("{:<8} {digest}: from {host}", kind_name(*kind));
            }
            Event::Retrying {
                digest,
                attempt,
                offset,
                ..
            } => say!(
                "{:<8} {digest}: retrying (attempt {attempt}, from byte {offset})",
                self.kind(digest)
            ),
            Event::Verifying { digest, kind } => {
                say!("{:<8} {digest}: verifying", kind_name(*kind));
            }
            Event::Done { digest, kind, size } => {
                say!(
                    "{:<8} {digest}: done ({})",
                    kind_name(*kind),
                    human_size(*size)
                );
            }
            Event::AlreadyExists { digest, kind, .. } => {
                say!("{:<8} {digest}: already exists", kind_name(*kind));
            }
            Event::Extracting {
                digest,
                current,
                total,
            } if due(&mut self.extracts, digest, *current, *total) => say!(
                "unpack   {digest}: extracting {}/{}",
                human_size(*current),
                human_size(*total)
            ),
            Event::LayerUnpacked { digest, chain_id } => {
                say!("unpack   {digest}: done (snapshot {chain_id})");
            }
            Event::LayerAlreadyUnpacked { digest, .. } => {
                say!("unpack   {digest}: already unpacked");
            }
            Event::ImageDone {
                name,
                digest,
                up_to_date,
            } => {
                if *up_to_date {
                    say!("{name}: image {digest} is up to date");
                } else {
                    say!("{name}: image {digest} saved");
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, pulled: &Pulled) {
        #[allow(clippy::print_stdout, reason = "the result goes to stdout")]
        for line in result_lines(pulled) {
            println!("{line}");
        }
    }

    fn fail(&mut self, _error: &anyhow::Error) {}

    fn interrupt(&mut self) {}
}
