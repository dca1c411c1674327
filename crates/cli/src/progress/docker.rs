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
//! The daemon's part, from `Pulling from` to `Status:`, is
//! [`hoist_engine::docker_progress`], the same translation hoistd streams to
//! a docker client; each message is printed as the docker CLI prints it
//! without a terminal ([`Message::plain`]), which drops the ones with byte
//! counts. This renderer adds the CLI's own lines, as moby's CLI does: `Using
//! default tag: latest` first when the reference names neither tag nor
//! digest, and the normalized reference last, which replaces the `<name>
//! <digest>` line of the other forms.

#![allow(clippy::print_stdout, reason = "the docker renderer prints progress")]

use hoist_engine::docker_progress::{Message, Translator, TranslatorOptions};
use hoist_engine::{Event, Pulled};

use super::{PullContext, Renderer};

/// The docker renderer: the daemon's messages as the docker CLI prints them,
/// plus what the CLI itself adds.
pub(crate) struct Docker {
    context: PullContext,
    translator: Translator,
    said_default_tag: bool,
}

/// Whether the reference as typed names neither a tag nor a digest.
fn is_name_only(typed: &str) -> bool {
    let last = typed.rsplit('/').next().unwrap_or(typed);
    !typed.contains('@') && !last.contains(':')
}

fn print(messages: Vec<Message>) {
    for line in messages.iter().filter_map(Message::plain) {
        println!("{line}");
    }
}

impl Docker {
    pub(crate) fn new(context: PullContext) -> Docker {
        let translator = Translator::new(TranslatorOptions {
            unpack: context.unpack,
            max_concurrent_downloads: context.max_concurrent_downloads,
        });
        Docker {
            context,
            translator,
            said_default_tag: false,
        }
    }
}

impl Renderer for Docker {
    fn event(&mut self, event: &Event) {
        if let Event::Resolving { .. } = event
            && !self.said_default_tag
            && is_name_only(&self.context.reference)
        {
            self.said_default_tag = true;
            println!("Using default tag: latest");
        }
        print(self.translator.event(event));
    }

    fn finish(&mut self, pulled: &Pulled) {
        print(self.translator.finish());
        println!("{}", pulled.name);
    }

    fn fail(&mut self, _error: &anyhow::Error) {
        print(self.translator.finish());
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
