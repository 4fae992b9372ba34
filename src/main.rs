//! The `voxmail` command line. Parsing arguments and nothing else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use voxmail::config::Config;

#[derive(Parser)]
#[command(
    name = "voxmail",
    version,
    about = "SIP/RTP media server with a voicemail engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default). Without --config, the embedded default configuration.
    Run(RunArgs),
    /// Validate a configuration and print every error with its line.
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(clap::Args, Default)]
struct RunArgs {
    /// Configuration file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// SIP listen address for UDP and TCP, e.g. 127.0.0.1:5060 (port 0: any free port).
    #[arg(long)]
    sip_listen: Option<SocketAddr>,
    /// Data directory (mailboxes, spool).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HTTP API listen address (port 0: any free port).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// RTP port range, e.g. 30000-30999.
    #[arg(long, value_parser = parse_range)]
    rtp_ports: Option<(u16, u16)>,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or("expected MIN-MAX")?;
    let a: u16 = a.trim().parse().map_err(|_| "bad MIN")?;
    let b: u16 = b.trim().parse().map_err(|_| "bad MAX")?;
    if a >= b {
        return Err("MIN must be below MAX".into());
    }
    Ok((a, b))
}

fn load(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    let result = match path {
        Some(p) => Config::load(p),
        None => Ok(Config::embedded()),
    };
    result.map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(1)
    })
}

/// The mailbox settings the API wrote (`<data_dir>/mailboxes/*/mailbox.toml`).
fn check_mailbox_files(config: &Config) -> ExitCode {
    let data = &config.storage.data_dir;
    match voxmail::store::mailboxes::check_mailbox_files(config, data) {
        Ok(n) => {
            println!("{n} mailbox settings file(s) in {} ok", data.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::from(1)
        }
    }
}

/// The dial plans are checked against the prompts they use.
fn check_dialplans(config: &Config) -> ExitCode {
    let prompts_dir = voxmail::server::prompts_dir(config);
    let prompts = match voxmail::prompts::PromptCache::load(&prompts_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: {e}", prompts_dir.display());
            return ExitCode::from(1);
        }
    };
    let dir = voxmail::server::dialplan_dir();
    match voxmail::dialplan::check(&dir, &prompts, &|_| false) {
        Ok(_) => {
            println!("configuration ok; dial plans in {} ok", dir.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{}", voxmail::dialplan::format_errors(&errors));
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    release_large_allocations();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::Check { config } => match load(config.as_ref()) {
            Ok(config) => match check_mailbox_files(&config) {
                ExitCode::SUCCESS => check_dialplans(&config),
                failed => failed,
            },
            Err(code) => code,
        },
        Command::Run(args) => {
            let mut config = match load(args.config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Some(a) = args.sip_listen {
                config.sip.listen = a;
            }
            if let Some(d) = args.data_dir {
                config.storage.data_dir = d;
            }
            if let Some((a, b)) = args.rtp_ports {
                config.rtp.port_min = a;
                config.rtp.port_max = b;
            }
            // Lines go through a bounded queue to a writer thread (started
            // here, before the runtime, so at the default priority); when
            // the queue is full a line is dropped rather than the caller
            // blocked. The guard flushes what is queued at exit.
            let (log_writer, _flush_logs_at_exit) =
                tracing_appender::non_blocking::NonBlockingBuilder::default()
                    .lossy(true)
                    .thread_name("log-writer")
                    .finish(std::io::stderr());
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(log_writer)
                .init();
            let runtime = match voxmail::server::runtime(config.rtp.realtime_priority > 0) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("voxmail: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match runtime.block_on(voxmail::server::run(config, args.http_listen)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("voxmail: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// glibc raises its mmap threshold after the first large free, after which
/// buffers like Argon2's 19 MiB come from the heap and stay in the process
/// after use: a burst of logins left ~10 MiB per caller resident. A fixed
/// threshold keeps large buffers mmapped and returned to the system.
fn release_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}
