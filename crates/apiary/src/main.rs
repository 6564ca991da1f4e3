//! `apiary`: the one binary. `serve` runs the whole system; the other commands administer it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use apiary_core::{Role, SystemClock};
use apiary_orchestrator::{Metrics, Orchestrator, WorkerBuilder};
use apiary_server::{AppState, HttpServer, ServerConfig};
use apiary_store::{NewUser, SecretKey, Store, StoreOptions};
use clap::{Args, Parser, Subcommand};

/// Apiary: hand software tasks to AI coding agents.
#[derive(Parser)]
#[command(name = "apiary", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives.
#[derive(Args, Clone)]
struct DbArgs {
    /// Data folder for the SQLite database and the secret key file.
    #[arg(long, env = "APIARY_DATA_DIR", default_value = "./apiary-data")]
    data_dir: PathBuf,
    /// PostgreSQL URL (postgres://…); SQLite in --data-dir when absent.
    #[arg(long, env = "APIARY_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the UI, the APIs, the job worker and the watchdog in one process.
    Serve {
        #[command(flatten)]
        db: DbArgs,
        /// Address to listen on.
        #[arg(long, env = "APIARY_BIND", default_value = "127.0.0.1:7878")]
        bind: SocketAddr,
        /// Mark session cookies Secure (set when Apiary is reached over https).
        #[arg(long, env = "APIARY_SECURE_COOKIES")]
        secure_cookies: bool,
    },
    /// Run jobs without serving HTTP (extra replicas on PostgreSQL).
    Worker {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Bring the database schema up to date and exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage personal API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password comes from APIARY_USER_PASSWORD or is generated and printed.
    Create {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// admin or member.
        #[arg(long, default_value = "member")]
        role: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a personal API token for a user; it is printed once.
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// The user's email.
        #[arg(long)]
        email: String,
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

/// Opens (and migrates) the store described by the arguments.
async fn open_store(db: &DbArgs) -> Result<Store> {
    std::fs::create_dir_all(&db.data_dir)
        .with_context(|| format!("creating data folder {}", db.data_dir.display()))?;
    let secret_key = match std::env::var("APIARY_SECRET_KEY") {
        Ok(k) if !k.trim().is_empty() => SecretKey::parse(&k).map_err(anyhow::Error::msg)?,
        _ => SecretKey::load_or_create(&db.data_dir.join("secret.key"))
            .context("reading or creating the secret key file")?,
    };
    let url = db
        .database_url
        .clone()
        .unwrap_or_else(|| StoreOptions::sqlite_url(&db.data_dir));
    let store = Store::connect(StoreOptions {
        url,
        secret_key,
        clock: Arc::new(SystemClock),
        max_connections: 8,
    })
    .await
    .context("connecting to the database")?;
    tracing::info!(backend = ?store.backend(), "migrating database");
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

fn nonempty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

fn worker(orch: &Orchestrator) -> apiary_orchestrator::Worker {
    // Handlers for the loop's jobs (provisioning, dispatch, notifications, teardown) register
    // here as they land; jobs of other kinds wait in the queue untouched.
    WorkerBuilder::new(orch.clone()).build()
}

async fn serve(db: DbArgs, bind: SocketAddr, secure_cookies: bool) -> Result<()> {
    let store = open_store(&db).await?;
    if let Some((admin, generated)) = store
        .bootstrap(
            nonempty_env("APIARY_ADMIN_EMAIL"),
            nonempty_env("APIARY_ADMIN_PASSWORD"),
        )
        .await
        .context("creating the first users")?
    {
        match generated {
            Some(pw) => println!("First admin: {}  password: {pw}  (shown once)", admin.email),
            None => println!(
                "First admin: {} (password from APIARY_ADMIN_PASSWORD)",
                admin.email
            ),
        }
    }
    let orch = Orchestrator::new(store.clone(), Arc::new(Metrics::default()));
    let state = AppState {
        store: store.clone(),
        orch: orch.clone(),
        config: Arc::new(ServerConfig {
            secure_cookies,
            ..ServerConfig::default()
        }),
    };
    let server = HttpServer::bind(bind, state)
        .await
        .with_context(|| format!("binding {bind}"))?;
    println!("Apiary is listening on http://{}", server.addr());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker_task = tokio::spawn(worker(&orch).run(Duration::from_secs(1), async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|v| *v).await;
    }));
    server
        .serve(shutdown_signal())
        .await
        .context("serving HTTP")?;
    let _ = stop_tx.send(true);
    let _ = worker_task.await;
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("APIARY_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            db,
            bind,
            secure_cookies,
        } => serve(db, bind, secure_cookies).await,
        Command::Worker { db } => {
            let store = open_store(&db).await?;
            let orch = Orchestrator::new(store.clone(), Arc::new(Metrics::default()));
            tracing::info!("worker running; Ctrl-C to stop");
            worker(&orch)
                .run(Duration::from_secs(1), shutdown_signal())
                .await;
            store.close().await;
            Ok(())
        }
        Command::Migrate { db } => {
            open_store(&db).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    db,
                    email,
                    name,
                    role,
                },
        } => {
            let role = match role.as_str() {
                "admin" => Role::Admin,
                "member" => Role::Member,
                other => bail!("--role must be admin or member, not {other:?}"),
            };
            let store = open_store(&db).await?;
            let (password, generated) = match nonempty_env("APIARY_USER_PASSWORD") {
                Some(p) => (p, false),
                None => (apiary_store::new_token("")[..20].to_string(), true),
            };
            let user = store
                .create_user(NewUser {
                    email,
                    name,
                    role,
                    password: Some(password.clone()),
                })
                .await?;
            println!("created {} ({}) id {}", user.email, role.as_str(), user.id);
            if generated {
                println!("password: {password}  (shown once)");
            }
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Create { db, email, name },
        } => {
            let store = open_store(&db).await?;
            let user = store
                .list_users()
                .await?
                .into_iter()
                .find(|u| u.email == email.trim().to_lowercase())
                .with_context(|| format!("no user with email {email}"))?;
            let (_, token) = store.create_api_token(&user.id, &name).await?;
            println!("{token}");
            eprintln!("(shown once; send it as 'Authorization: Bearer <token>')");
            Ok(())
        }
    }
}
