//! The wasm runtime: one engine and pre-instantiated component shared by all
//! connections, one store and instance per connection.
//!
//! This layer only translates WIT calls into [`ConnectionHandle`] calls; it
//! knows nothing of frames or sockets.

mod bindings;
mod host_impl;
mod stdio;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::config::ServerConfig;
use crate::server::connection::{ConnectionHandle, GuestOutcome};
use bindings::{Handler, HandlerPre, PendingConnectionResource};

/// How often the epoch advances: the granularity of CPU budgets and of a
/// busy guest yielding to its neighbours.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Per-connection store data: the guest's whole view of the host.
pub struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    conn: ConnectionHandle,
    /// The epoch tick at which the guest last got control back from the
    /// host; its CPU budget counts from there.
    resumed_at: u64,
    ticks: Arc<AtomicU64>,
}

impl GuestState {
    /// Note that the guest is about to run again after a host call.
    fn resumed(&mut self) {
        self.resumed_at = self.ticks.load(Ordering::Relaxed);
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A compiled, linked guest component, ready to instantiate per connection.
pub struct Guest {
    pre: HandlerPre<GuestState>,
    /// Short content hash, shown in logs.
    version: String,
}

impl Guest {
    /// The component's short content hash.
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// The engine and linker shared by every guest and connection.
pub struct Runtime {
    engine: Engine,
    linker: Linker<GuestState>,
    config: Arc<ServerConfig>,
    ticks: Arc<AtomicU64>,
}

impl Runtime {
    /// Configure the engine (pooling allocator sized from the connection
    /// limit, epoch interruption) and link WASI and the wsbox world.
    pub fn new(config: Arc<ServerConfig>) -> wasmtime::Result<Self> {
        let mut wasm_config = wasmtime::Config::new();
        wasm_config.wasm_component_model(true);
        wasm_config.epoch_interruption(true);
        // Each memory slot reserves its maximum size in address space, so
        // reserve the guest limit rather than the default 4 GiB.
        let guest_memory = config.guest_memory as u64;
        wasm_config.memory_reservation(guest_memory);
        wasm_config.memory_guard_size(64 << 10);
        wasm_config.memory_reservation_for_growth(0);
        let slots = u32::try_from(config.max_connections.saturating_add(16)).unwrap_or(u32::MAX);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_memories(slots)
            .total_tables(slots.saturating_mul(4))
            .total_core_instances(slots.saturating_mul(8))
            .total_stacks(slots)
            .max_memory_size(config.guest_memory);
        wasm_config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm_config).context("configuring the wasm engine")?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).context("linking WASI")?;
        Handler::add_to_linker::<_, wasmtime::component::HasSelf<GuestState>>(
            &mut linker,
            |state| state,
        )
        .context("linking the wsbox world")?;

        let ticks = Arc::new(AtomicU64::new(0));
        spawn_epoch_ticker(engine.clone(), ticks.clone());
        Ok(Self {
            engine,
            linker,
            config,
            ticks,
        })
    }

    /// Compile and link a component from a file.
    pub fn load(&self, path: &Path) -> wasmtime::Result<Guest> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        self.load_bytes(&bytes)
            .with_context(|| format!("loading {}", path.display()))
    }

    /// Compile and link a component from its bytes.
    pub fn load_bytes(&self, bytes: &[u8]) -> wasmtime::Result<Guest> {
        let component = Component::new(&self.engine, bytes).context("compiling the component")?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .context("the component does not fit the wsbox:websocket/handler world")?;
        let pre = HandlerPre::new(instance_pre)
            .context("the component does not export the wsbox:websocket/handler world")?;
        Ok(Guest {
            pre,
            version: short_hash(bytes),
        })
    }

    /// Run `guest` for one connection: instantiate it and call `handle`.
    pub async fn run(&self, guest: &Guest, conn: ConnectionHandle) -> GuestOutcome {
        match self.run_inner(guest, conn).await {
            Ok(()) => GuestOutcome::Returned,
            Err(error) => GuestOutcome::Trapped(format!("{error:#}")),
        }
    }

    async fn run_inner(&self, guest: &Guest, conn: ConnectionHandle) -> wasmtime::Result<()> {
        let conn_id = conn.id();
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stdout(stdio::GuestOutput::new(conn_id, "stdout"))
            .stderr(stdio::GuestOutput::new(conn_id, "stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.config.guest_memory)
            .build();
        let state = GuestState {
            wasi,
            table: ResourceTable::new(),
            limits,
            conn,
            resumed_at: self.ticks.load(Ordering::Relaxed),
            ticks: self.ticks.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_store| {
            // Yield to the other connections on this thread at every tick;
            // the guest continues where it was.
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        let handler = guest
            .pre
            .instantiate_async(&mut store)
            .await
            .context("instantiating the guest")?;
        let pending = store
            .data_mut()
            .table
            .push(PendingConnectionResource)
            .context("creating the pending connection")?;
        handler.call_handle(&mut store, pending).await
    }
}

/// Advance the engine's epoch from a plain thread, not a task on the runtime
/// the guests run on: a busy runtime must not delay its own interruption.
fn spawn_epoch_ticker(engine: Engine, ticks: Arc<AtomicU64>) {
    let weak = engine.weak();
    drop(engine);
    let spawned = std::thread::Builder::new()
        .name("wsbox-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                std::thread::sleep(EPOCH_TICK);
                ticks.fetch_add(1, Ordering::Relaxed);
                engine.increment_epoch();
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the epoch thread; guests will not be interrupted");
    }
}

/// A short, stable identifier of a component's bytes (FNV-1a, 64 bits).
fn short_hash(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:012x}", hash >> 16)
}
