//! `hoist login` and `hoist logout`: credentials checked against the
//! registry and stored the way `docker login` stores them (the configured
//! credential helper, else base64 `auth` in `config.json`, mode 0600), so
//! docker and hoist share them. The password is never echoed or logged.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use hoist_engine::{Credentials, Engine, EngineOptions, RegistryOptions};

/// Flags of `hoist login`.
#[derive(Args)]
pub(crate) struct LoginArgs {
    /// The registry, e.g. `registry.example.com:5000` [default: docker.io]
    server: Option<String>,
    /// The user name [default: asked on the terminal]
    #[arg(long, short)]
    username: Option<String>,
    /// Read the password from standard input (one line)
    #[arg(long)]
    password_stdin: bool,
    /// Talk plain HTTP to the registry
    #[arg(long)]
    plain_http: bool,
    /// Trust this CA certificate (PEM) in addition to the system roots
    #[arg(long, value_name = "FILE")]
    tlscacert: Vec<PathBuf>,
}

/// Flags of `hoist logout`.
#[derive(Args)]
pub(crate) struct LogoutArgs {
    /// The registry [default: docker.io]
    server: Option<String>,
}

/// The registry domain a server argument names (`https://host/v1/` →
/// `host`; Docker Hub's names → `docker.io`).
fn domain_of(server: Option<&str>) -> String {
    hoist_engine::login::registry_host(server.unwrap_or("docker.io"))
}

fn config_path() -> anyhow::Result<PathBuf> {
    hoist_engine::login::docker_config_path()
        .context("neither DOCKER_CONFIG nor HOME is set: nowhere to keep credentials")
}

pub(crate) async fn run_login(root: &Path, args: LoginArgs) -> anyhow::Result<()> {
    let domain = domain_of(args.server.as_deref());
    let username = match args.username {
        Some(username) => username,
        None => prompt(&format!("Username for {domain}: "), true)?,
    };
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        prompt("Password: ", false)?
    };
    if username.is_empty() || password.is_empty() {
        anyhow::bail!("a user name and a password are needed");
    }
    let credentials = Credentials::new(username, password);
    let engine = Engine::open_with(
        root,
        EngineOptions {
            registry: RegistryOptions {
                plain_http: args.plain_http,
                ca_files: args.tlscacert,
                ..RegistryOptions::default()
            },
            ..EngineOptions::default()
        },
    )
    .with_context(|| format!("opening {}", root.display()))?;
    engine
        .login(&domain, credentials.clone())
        .await
        .with_context(|| format!("logging in to {domain}"))?;
    let path = config_path()?;
    let stored = hoist_engine::login::store(&path, &domain, &credentials).await?;
    #[allow(clippy::print_stdout, reason = "the command's result")]
    match stored {
        hoist_engine::login::Stored::Helper(helper) => {
            println!("Login Succeeded (credentials in docker-credential-{helper})");
        }
        _ => println!("Login Succeeded (credentials in {})", path.display()),
    }
    Ok(())
}

pub(crate) async fn run_logout(args: LogoutArgs) -> anyhow::Result<()> {
    let domain = domain_of(args.server.as_deref());
    let path = config_path()?;
    let removed = hoist_engine::login::erase(&path, &domain).await?;
    #[allow(clippy::print_stdout, reason = "the command's result")]
    if removed {
        println!("Removing login credentials for {domain}");
    } else {
        println!("Not logged in to {domain}");
    }
    Ok(())
}

/// Asks on the terminal; the password is read with echo off.
fn prompt(question: &str, echo: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!("no terminal to ask on: pass --username and --password-stdin");
    }
    #[allow(clippy::print_stderr, reason = "the prompt")]
    {
        eprint!("{question}");
    }
    std::io::stderr().flush()?;
    let fd = stdin.lock();
    let saved = if echo {
        None
    } else {
        let saved = rustix::termios::tcgetattr(&fd).context("reading the terminal settings")?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &quiet)
            .context("turning echo off")?;
        Some(saved)
    };
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &saved);
        #[allow(clippy::print_stderr, reason = "end the prompt's line")]
        {
            eprintln!();
        }
    }
    read.context("reading from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_arguments_name_a_domain() {
        assert_eq!(domain_of(None), "docker.io");
        assert_eq!(domain_of(Some("https://index.docker.io/v1/")), "docker.io");
        assert_eq!(
            domain_of(Some("Reg.Example.com:5000")),
            "reg.example.com:5000"
        );
        assert_eq!(domain_of(Some("http://127.0.0.1:5000/")), "127.0.0.1:5000");
    }
}
