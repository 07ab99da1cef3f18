//! The wasm runtime: one engine and pre-instantiated component shared by all
//! connections, one store and instance per connection.
//!
//! This layer only translates WIT calls into [`ConnectionHandle`] calls; it
//! knows nothing of frames or sockets.
//!
//! CPU budget bookkeeping is done in one place for every import, wsbox's and
//! WASI's alike: the accessors every import goes through flag it, and the
//! epoch callback counts the ticks the guest ran since (see `state`).
//!
//! The pooling allocator is sized to the guest, not by fixed ratios: before
//! the first component compiles, [`measure`] reads from its bytes what one
//! connection costs (core instances, memories, tables), and [`PoolPlan`]
//! reserves that (with a floor, `--pool-core-instances`) for every
//! connection allowed. The per-component limits are that reservation, and a
//! later component that needs more is refused before it compiles
//! ([`PoolPlan::admit`]), so the pool never runs out below
//! `--max-connections`.

mod bindings;
mod footprint;
mod guest_send;
mod host_impl;
mod limits;
mod random;
mod state;
mod stdio;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};
use wasmtime::error::Context as _;
use wasmtime::{Cache, CacheConfig, Engine, InstanceAllocationStrategy, Store, UpdateDeadline};

use crate::config::{HOST_STACK_HEADROOM, ServerConfig, TableInit};
use crate::metrics::Metrics;
use crate::session::{ConnectionHandle, GuestFailure, GuestOutcome};
use bindings::{HandlerPre, PendingConnectionResource};
pub use footprint::{Cost, DoesNotFit, Footprint, FootprintError, PoolPlan, SPARE_SLOTS, measure};
use limits::GuestLimiter;
pub use state::GuestState;

/// How often the epoch advances: the granularity of CPU budgets and of a
/// busy guest yielding to its neighbours.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A compiled, linked guest component, ready to instantiate per connection.
pub struct Guest {
    pre: HandlerPre<GuestState>,
    /// Short content hash, shown in logs.
    version: Arc<str>,
}

impl Guest {
    /// The component's short content hash.
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// What `host check` reports about a component that fits the world.
#[derive(Clone, Debug)]
pub struct GuestReport {
    /// The component's short content hash (the version shown in logs).
    pub version: String,
    /// Its imports: name and a short description of the item.
    pub imports: Vec<(String, String)>,
    /// Its exports: name and a short description of the item.
    pub exports: Vec<(String, String)>,
    /// What one connection of it costs, and the interfaces it imports.
    pub footprint: Footprint,
}

/// The engine and linker shared by every guest and connection.
pub struct Runtime {
    engine: Engine,
    linker: Linker<GuestState>,
    config: Arc<ServerConfig>,
    /// The CPU budget in epoch ticks; `None` is unlimited.
    cpu_budget_ticks: Option<u64>,
    /// Where instantiation times go, with `--metrics-listen`.
    metrics: OnceLock<Arc<Metrics>>,
    /// What the instance pool holds per connection.
    pool: PoolPlan,
}

impl Runtime {
    /// Configure the engine (pooling allocator sized for the connection
    /// limit of a component costing `cost`, see [`PoolPlan`]; epoch
    /// interruption, compilation cache) and link WASI and the wsbox world.
    ///
    /// `cost` is the first app's ([`measure`]); components loaded later
    /// must fit what the pool was sized for.
    pub fn new(config: Arc<ServerConfig>, cost: &Cost) -> wasmtime::Result<Self> {
        let mut wasm_config = wasmtime::Config::new();
        wasm_config.wasm_component_model(true);
        wasm_config.epoch_interruption(true);
        if let Some(dir) = &config.cache_dir {
            // A cache that cannot be set up costs only compile time.
            match compile_cache(dir) {
                Ok(cache) => {
                    wasm_config.cache(Some(cache));
                }
                Err(error) => tracing::warn!(
                    dir = %dir.display(),
                    "compiling without a cache: {error:#}"
                ),
            }
        }
        if config.perf_map {
            wasm_config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        // Each memory slot reserves its maximum size in address space, so
        // reserve the guest limit rather than the default 4 GiB.
        let guest_memory = config.guest_memory as u64;
        wasm_config.memory_reservation(guest_memory);
        wasm_config.memory_guard_size(64 << 10);
        wasm_config.memory_reservation_for_growth(0);
        // Zeroing a finished connection's fiber stack decommits it (no
        // `async_stack_keep_resident`): its pages go back to the system
        // rather than stay resident in an unused pool slot, and the next
        // guest cannot read what the last one left there.
        wasm_config.async_stack_zeroing(true);
        // host/benches/README.md, "Issue #13, third pass": a first write to
        // a copy-on-write page costs a TLB flush on the other cores. So
        // does a lazily filled table's (fourth pass), but filling tables at
        // instantiation costs each idle instance a page: the user chooses.
        wasm_config.memory_init_cow(!config.memory_init.copies(cost.memory_bytes));
        wasm_config.table_lazy_init(config.table_init == TableInit::Lazy);
        // The guest's stack limit, and its fiber stack: that plus room for
        // the host calls that run on it.
        wasm_config.max_wasm_stack(config.guest_stack);
        wasm_config.async_stack_size(config.guest_stack.saturating_add(HOST_STACK_HEADROOM));
        let mut pool = PoolPlan::new(
            config.max_connections,
            config.pool_core_instances,
            config.guest_memory,
            cost,
        );
        pool.decommit_batch = config.decommit_batch.regions(cost.data_bytes);
        wasm_config.allocation_strategy(InstanceAllocationStrategy::Pooling(
            pool.allocation_config(),
        ));
        let engine = Engine::new(&wasm_config).context("configuring the wasm engine")?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).context("linking WASI")?;
        // The world's own interfaces; its WASI imports (poll, clocks) came
        // with WASI above.
        type Own = wasmtime::component::HasSelf<GuestState>;
        bindings::types::add_to_linker::<_, Own>(&mut linker, |state| state)
            .and_then(|()| bindings::websocket::add_to_linker::<_, Own>(&mut linker, |state| state))
            .and_then(|()| bindings::log::add_to_linker::<_, Own>(&mut linker, |state| state))
            .and_then(|()| guest_send::link(&mut linker))
            .context("linking the wsbox world")?;

        spawn_epoch_ticker(engine.clone());
        let cpu_budget_ticks = config.guest_cpu.map(|budget| {
            // Round up: a budget is never shorter than asked.
            let tick = EPOCH_TICK.as_nanos();
            u64::try_from(budget.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX)
        });
        Ok(Self {
            engine,
            linker,
            config,
            cpu_budget_ticks,
            metrics: OnceLock::new(),
            pool,
        })
    }

    /// What the instance pool holds per connection, and for how many.
    pub fn pool(&self) -> &PoolPlan {
        &self.pool
    }

    /// Record instantiation times into `metrics` from now on (once).
    pub fn set_metrics(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// Compile and link a component from its bytes. Blocks while it
    /// compiles (unless the cache has it): call it off the async threads.
    /// A component that does not fit the pool ([`PoolPlan::admit`]) is
    /// refused before it compiles.
    pub fn load_bytes(&self, bytes: &[u8]) -> wasmtime::Result<Guest> {
        self.load_component(bytes).map(|(guest, ..)| guest)
    }

    /// Compile and link a component and describe its imports and exports
    /// (`host check`).
    pub fn check_bytes(&self, bytes: &[u8]) -> wasmtime::Result<GuestReport> {
        let (guest, component, footprint) = self.load_component(bytes)?;
        let ty = component.component_type();
        let imports = ty
            .imports(&self.engine)
            .map(|(name, item)| (name.to_owned(), describe_item(&self.engine, &item.ty)))
            .collect();
        let exports = ty
            .exports(&self.engine)
            .map(|(name, item)| (name.to_owned(), describe_item(&self.engine, &item.ty)))
            .collect();
        Ok(GuestReport {
            version: guest.version().to_owned(),
            imports,
            exports,
            footprint,
        })
    }

    fn load_component(&self, bytes: &[u8]) -> wasmtime::Result<(Guest, Component, Footprint)> {
        // Sized up before compiling: refusing is cheap, compiling is not.
        let footprint = match measure(bytes) {
            Ok(footprint) => footprint,
            // wasmtime's own parser says best what is wrong with it.
            Err(error) => {
                Component::new(&self.engine, bytes).context("compiling the component")?;
                return Err(error.into());
            }
        };
        self.pool.admit(&footprint.cost)?;
        let component = Component::new(&self.engine, bytes).context("compiling the component")?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .context("the component needs an import the host does not provide")?;
        let pre = HandlerPre::new(instance_pre)
            .context("the component does not export the wsbox:websocket/handler world")?;
        let guest = Guest {
            pre,
            version: version_of(bytes).into(),
        };
        Ok((guest, component, footprint))
    }

    /// Run `guest` for one connection: instantiate it and call `handle`.
    pub async fn run(&self, guest: &Guest, conn: ConnectionHandle) -> GuestOutcome {
        let conn_id = conn.id();
        match self.run_inner(guest, conn).await {
            Ok(()) => GuestOutcome::Returned,
            Err(failure) => {
                if let RunError::Guest { error, .. } | RunError::Instantiate(error) = &failure
                    && let Some(backtrace) = error.downcast_ref::<wasmtime::WasmBacktrace>()
                {
                    tracing::debug!(
                        conn = conn_id,
                        version = guest.version(),
                        "guest backtrace:\n{backtrace}"
                    );
                }
                GuestOutcome::Failed(failure.classify(self.config.guest_cpu))
            }
        }
    }

    async fn run_inner(&self, guest: &Guest, conn: ConnectionHandle) -> Result<(), RunError> {
        let conn_id = conn.id();
        // The sandbox: no preopened directories, no environment, no
        // arguments, no stdin, no sockets. Clocks and randomness are real
        // (the secure kind from the thread's generator, see `random`).
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .secure_random(random::ThreadRandom)
            .stdout(stdio::GuestOutput::new(conn_id, &guest.version, "stdout"))
            .stderr(stdio::GuestOutput::new(conn_id, &guest.version, "stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = GuestState::new(
            wasi,
            GuestLimiter::new(self.config.guest_memory),
            conn,
            guest.version.clone(),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state.limits());
        store.set_epoch_deadline(1);
        let budget = self.cpu_budget_ticks;
        let budget_ms = self.config.guest_cpu.map_or(0, |budget| budget.as_millis());
        // Set whenever the guest's call is suspended (it waits in an import,
        // or yields below), so the callback can tell a guest that has just
        // resumed from one that ran through a whole tick.
        let suspended = Arc::new(AtomicBool::new(false));
        let metrics = self.metrics.get().cloned();
        let suspended_seen = Arc::clone(&suspended);
        // Called at the first tick the guest's code sees after its deadline:
        // wasmtime then sets the next deadline one tick past the moment the
        // callback (and the yield below) returns, so the time its neighbours
        // take is not counted.
        store.epoch_deadline_callback(move |mut store| {
            let ran = store.data_mut().cpu_tick();
            if budget.is_some_and(|budget| ran > budget) {
                return Err(wasmtime::Error::new(CpuBudgetExceeded { budget_ms }));
            }
            // The deadline passed while the guest waited (an idle connection
            // for more than a tick, every message on a quiet one): it has
            // run for less than a tick since, and its neighbours have just
            // had the thread. Yielding again would cost a round through the
            // scheduler for nothing.
            if suspended_seen.swap(false, Ordering::Relaxed) {
                return Ok(UpdateDeadline::Continue(1));
            }
            if let Some(metrics) = &metrics {
                metrics.guest_yielded();
            }
            // It ran through a whole tick: let the other connections on
            // this thread run; the guest continues where it was. The yield
            // suspends the call too; that is not a wait.
            let suspended = Arc::clone(&suspended_seen);
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(async move {
                    tokio::task::yield_now().await;
                    suspended.store(false, Ordering::Relaxed);
                }),
            ))
        });
        let started = std::time::Instant::now();
        // Boxed: instantiation's state (1.2 KB) is needed only until the
        // guest starts; inline, its room would stay in every connection's
        // task for as long as the guest runs.
        let handler = Box::pin(guest.pre.instantiate_async(&mut store))
            .await
            .map_err(RunError::Instantiate)?;
        if let Some(metrics) = self.metrics.get() {
            metrics.guest_instantiated(started.elapsed());
        }
        let pending = store
            .data_mut()
            .table()
            .push(PendingConnectionResource)
            .map_err(|error| RunError::Instantiate(error.into()))?;
        // The CPU budget counts from the first call into the guest.
        store.data_mut().start_budget();
        let result = {
            let mut call = std::pin::pin!(handler.call_handle(&mut store, pending));
            std::future::poll_fn(|cx| {
                let poll = call.as_mut().poll(cx);
                if poll.is_pending() {
                    suspended.store(true, Ordering::Relaxed);
                }
                poll
            })
            .await
        };
        result.map_err(|error| RunError::Guest {
            error,
            // A guest whose allocation failed usually traps somewhere else
            // (Rust aborts): the limiter knows the limit it ran into.
            memory_limit: store.data().limit_exceeded().map(str::to_owned),
        })
    }
}

/// The epoch callback's verdict on a guest that ran past its budget.
#[derive(Debug, thiserror::Error)]
#[error("guest exceeded its CPU budget of {budget_ms} ms")]
struct CpuBudgetExceeded {
    budget_ms: u128,
}

/// How running a guest failed, before classification.
enum RunError {
    /// It could not be instantiated.
    Instantiate(wasmtime::Error),
    /// `handle` failed.
    Guest {
        error: wasmtime::Error,
        /// The limit the memory limiter refused, if any.
        memory_limit: Option<String>,
    },
}

impl RunError {
    /// The typed failure: a CPU budget (the epoch callback's own error), a
    /// memory limit (the limiter refused a growth; the trap that follows
    /// says nothing about memory), or a plain trap.
    fn classify(self, guest_cpu: Option<Duration>) -> GuestFailure {
        match self {
            RunError::Instantiate(error) => GuestFailure::Instantiate {
                message: failure_reason(&error),
            },
            RunError::Guest { error, .. }
                if error.chain().any(|cause| cause.is::<CpuBudgetExceeded>()) =>
            {
                GuestFailure::CpuBudget {
                    budget_ms: guest_cpu.map_or(0, |budget| {
                        u64::try_from(budget.as_millis()).unwrap_or(u64::MAX)
                    }),
                }
            }
            RunError::Guest {
                memory_limit: Some(limit),
                ..
            } => GuestFailure::MemoryLimit { limit },
            RunError::Guest { error, .. } => GuestFailure::Trap {
                message: failure_reason(&error),
            },
        }
    }
}

/// The default compilation cache directory: `$XDG_CACHE_HOME/wsbox`, else
/// `~/.cache/wsbox`; `None` when neither variable is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    absolute("XDG_CACHE_HOME")
        .map(|dir| dir.join("wsbox"))
        .or_else(|| absolute("HOME").map(|home| home.join(".cache").join("wsbox")))
}

/// wasmtime's on-disk cache of compiled code, in `dir`.
fn compile_cache(dir: &Path) -> wasmtime::Result<Cache> {
    let dir = std::path::absolute(dir)
        .with_context(|| format!("resolving the cache directory {}", dir.display()))?;
    let mut config = CacheConfig::new();
    config.with_directory(dir);
    Cache::new(config)
}

/// A short description of an imported or exported item, e.g.
/// `instance { handle }` or `func`.
fn describe_item(engine: &Engine, item: &ComponentItem) -> String {
    match item {
        ComponentItem::ComponentFunc(_) => "func".into(),
        ComponentItem::CoreFunc(_) => "core func".into(),
        ComponentItem::Module(_) => "core module".into(),
        ComponentItem::Component(_) => "component".into(),
        ComponentItem::Type(_) => "type".into(),
        ComponentItem::Resource(_) => "resource".into(),
        ComponentItem::ComponentInstance(instance) => {
            let mut text = String::from("instance {");
            let mut first = true;
            for (name, export) in instance.exports(engine) {
                let kind = match export.ty {
                    ComponentItem::ComponentFunc(_) => "",
                    ComponentItem::Resource(_) => "resource ",
                    ComponentItem::Type(_) => continue,
                    _ => "other ",
                };
                let _ = write!(text, "{} {kind}{name}", if first { "" } else { "," });
                first = false;
            }
            text.push_str(" }");
            text
        }
    }
}

/// Advance the engine's epoch from a plain thread, not a task on the runtime
/// the guests run on: a busy runtime must not delay its own interruption.
fn spawn_epoch_ticker(engine: Engine) {
    let weak = engine.weak();
    drop(engine);
    let spawned = std::thread::Builder::new()
        .name("wsbox-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the epoch thread; guests will not be interrupted");
    }
}

/// Why a guest failed, on one line: the error's causes without the wasm
/// backtrace (logged at debug level instead).
fn failure_reason(error: &wasmtime::Error) -> String {
    let backtrace = error
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(ToString::to_string);
    let causes: Vec<String> = error
        .chain()
        .map(ToString::to_string)
        .filter(|cause| Some(cause) != backtrace.as_ref())
        .collect();
    one_line(&causes.join(": "))
}

/// An error and its causes (`{:#}`) on one line: some wasmtime errors
/// spread over several (parser dumps, backtraces).
pub fn one_line(error: &dyn std::fmt::Display) -> String {
    let text = format!("{error:#}");
    let mut line = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !line.is_empty() && !word.starts_with([',', ']', ')']) && !line.ends_with(['[', '(']) {
            line.push(' ');
        }
        line.push_str(word);
    }
    line
}

/// The version of a component: a short, stable identifier of its bytes
/// (FNV-1a, 64 bits, first 12 hex digits).
pub fn version_of(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:012x}", hash >> 16)
}
