//! What one connection of a component costs the instance pool, read from
//! the component's bytes before it is compiled, and the pool sized from it.
//!
//! Counted over what wasmtime's pooling allocator counts when it checks a
//! component (`validate_component` in wasmtime 48): wasmtime-environ's
//! translation of the component, whose flat list of initializers holds one
//! instantiation per core instance, nested components included (as often
//! as they are instantiated) and the adapter modules wasmtime generates
//! between them (componentize-js's QuickJS build has one); the memories and
//! tables those modules *define* (an imported one belongs to the instance
//! that defined it). Instances made of exports cost nothing; an imported
//! module counts as one core instance whose memories and tables are
//! unknown.

use thiserror::Error;
use wasmparser::{Encoding, Parser, Payload};
use wasmtime::PoolingAllocationConfig;

/// Slots the pool holds beyond `--max-connections`: instances still being
/// torn down while their successors start.
pub const SPARE_SLOTS: usize = 16;

/// wasmtime's default of table elements per table slot; more only when a
/// component starts with a larger table.
const DEFAULT_TABLE_ELEMENTS: u64 = 20_000;

/// What one instance of a component (or one instantiation of a core
/// module) takes from the pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Core module instances.
    pub core_instances: u32,
    /// Linear memories defined by those instances.
    pub memories: u32,
    /// Tables defined by those instances.
    pub tables: u32,
    /// Bytes of linear memory at instantiation, all memories together.
    pub memory_bytes: u64,
    /// Bytes the instantiated modules' active data segments hold, all
    /// together: what an instance writes into its memory before its guest
    /// runs, so at least what a finished instance leaves resident.
    pub data_bytes: u64,
    /// Table elements at instantiation, all tables together.
    pub table_elements: u64,
    /// Most memories one core module defines.
    pub memories_per_module: u32,
    /// Most tables one core module defines.
    pub tables_per_module: u32,
    /// Most elements one table starts with.
    pub largest_table: u64,
}

/// One connection's cost, and what the component imports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// What one instance of the component takes from the pool.
    pub cost: Cost,
    /// The names of its imports (`wasi:io/poll@0.2.6`, ...), in order.
    pub imports: Vec<String>,
}

impl Footprint {
    /// The imported WASI interfaces (`wasi:...`).
    pub fn wasi_imports(&self) -> impl Iterator<Item = &str> {
        self.imports
            .iter()
            .map(String::as_str)
            .filter(|name| name.starts_with("wasi:"))
    }
}

/// Why a component's footprint could not be read.
#[derive(Debug, Error)]
pub enum FootprintError {
    /// The bytes do not parse.
    #[error("reading the component's structure: {0}")]
    Parse(#[from] wasmparser::BinaryReaderError),
    /// A core module, not a component.
    #[error("a core module, not a component")]
    NotAComponent,
    /// wasmtime could not translate it (an invalid component).
    #[error("{0}")]
    Translate(String),
}

/// What the instance pool holds for each connection, and for how many.
///
/// The rule: per connection, the pool reserves what the component it
/// starts with needs, and at least
/// - `--pool-core-instances` core instances (default 8: a Rust guest uses
///   3, a componentize-py one 14),
/// - half as many tables (wasm modules from wit-component define a table
///   in about every other instance),
/// - one memory (each memory slot reserves `--guest-memory` of address
///   space, so none is kept spare),
/// - wasmtime's defaults per module (one memory, one table, tables of
///   20,000 elements);
///
/// times `--max-connections` plus [`SPARE_SLOTS`]. The per-component limits
/// are the per-connection reservation, so any component that loads can be
/// instantiated for every connection allowed; one that needs more is
/// refused ([`PoolPlan::admit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolPlan {
    /// Connection slots: `--max-connections` plus [`SPARE_SLOTS`].
    pub slots: u32,
    /// Core instances per connection.
    pub core_instances: u32,
    /// Linear memories per connection.
    pub memories: u32,
    /// Tables per connection.
    pub tables: u32,
    /// Memories one core module may define.
    pub memories_per_module: u32,
    /// Tables one core module may define.
    pub tables_per_module: u32,
    /// Elements one table slot holds.
    pub table_elements: u64,
    /// Linear memory one connection may use, all memories together
    /// (`--guest-memory`); also the size of a memory slot.
    pub guest_memory: u64,
    /// How many memory regions of finished instances are given back to
    /// the system in one go (`--decommit-batch`, resolved for the app by
    /// [`crate::config::DecommitBatch::regions`]).
    pub decommit_batch: usize,
}

impl PoolPlan {
    /// The pool for `max_connections` connections of a component costing
    /// `cost`, keeping at least `min_core_instances` core instances per
    /// connection.
    pub fn new(
        max_connections: usize,
        min_core_instances: u32,
        guest_memory: usize,
        cost: &Cost,
    ) -> PoolPlan {
        let slots = u32::try_from(max_connections.saturating_add(SPARE_SLOTS)).unwrap_or(u32::MAX);
        PoolPlan {
            slots,
            core_instances: cost.core_instances.max(min_core_instances).max(1),
            memories: cost.memories.max(1),
            tables: cost.tables.max(min_core_instances.div_ceil(2)).max(1),
            memories_per_module: cost.memories_per_module.max(1),
            tables_per_module: cost.tables_per_module.max(1),
            table_elements: cost.largest_table.max(DEFAULT_TABLE_ELEMENTS),
            guest_memory: u64::try_from(guest_memory).unwrap_or(u64::MAX),
            decommit_batch: crate::config::DecommitBatch::default().regions(cost.data_bytes),
        }
    }

    /// Core instances in the whole pool.
    pub fn total_core_instances(&self) -> u32 {
        self.slots.saturating_mul(self.core_instances)
    }

    /// Memories in the whole pool.
    pub fn total_memories(&self) -> u32 {
        self.slots.saturating_mul(self.memories)
    }

    /// Tables in the whole pool.
    pub fn total_tables(&self) -> u32 {
        self.slots.saturating_mul(self.tables)
    }

    /// wasmtime's pooling allocator configured to this plan.
    pub fn allocation_config(&self) -> PoolingAllocationConfig {
        let mut pool = PoolingAllocationConfig::default();
        pool.decommit_batch_size(self.decommit_batch.max(1))
            .total_component_instances(self.slots)
            .total_core_instances(self.total_core_instances())
            .total_memories(self.total_memories())
            .total_tables(self.total_tables())
            .total_stacks(self.slots)
            .max_core_instances_per_component(self.core_instances)
            .max_memories_per_component(self.memories)
            .max_tables_per_component(self.tables)
            .max_memories_per_module(self.memories_per_module)
            .max_tables_per_module(self.tables_per_module)
            .table_elements(usize::try_from(self.table_elements).unwrap_or(usize::MAX))
            .max_memory_size(usize::try_from(self.guest_memory).unwrap_or(usize::MAX));
        pool
    }

    /// Whether a component costing `cost` can serve every connection of
    /// this pool; why not if it cannot.
    pub fn admit(&self, cost: &Cost) -> Result<(), DoesNotFit> {
        let per_connection = |what, needs: u32, reserved: u32| {
            (needs > reserved).then(|| DoesNotFit::PerConnection {
                what,
                needs,
                reserved,
                slots: self.slots,
                hint: if what == "core instances" {
                    format!(" (--pool-core-instances {needs} keeps room for it)")
                } else {
                    String::new()
                },
            })
        };
        let per_module = |what, needs: u32, reserved: u32| {
            (needs > reserved).then_some(DoesNotFit::PerModule {
                what,
                needs,
                reserved,
            })
        };
        let refusal = per_connection("core instances", cost.core_instances, self.core_instances)
            .or_else(|| per_connection("memories", cost.memories, self.memories))
            .or_else(|| per_connection("tables", cost.tables, self.tables))
            .or_else(|| {
                per_module(
                    "memories",
                    cost.memories_per_module,
                    self.memories_per_module,
                )
            })
            .or_else(|| per_module("tables", cost.tables_per_module, self.tables_per_module))
            .or_else(|| {
                (cost.largest_table > self.table_elements).then_some(DoesNotFit::TableElements {
                    needs: cost.largest_table,
                    reserved: self.table_elements,
                })
            })
            .or_else(|| {
                (cost.memory_bytes > self.guest_memory).then_some(DoesNotFit::GuestMemory {
                    needs: cost.memory_bytes,
                    limit: self.guest_memory,
                })
            });
        refusal.map_or(Ok(()), Err)
    }
}

/// Why a component cannot serve the connections the pool was sized for.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DoesNotFit {
    /// It needs more of something per connection than the pool reserved.
    #[error(
        "needs {needs} {what} per connection; the pool was sized for {reserved} × {slots} \
         connections; restart the host to serve it{hint}"
    )]
    PerConnection {
        /// `core instances`, `memories` or `tables`.
        what: &'static str,
        /// What one connection of the component needs.
        needs: u32,
        /// What the pool holds per connection.
        reserved: u32,
        /// Connection slots in the pool.
        slots: u32,
        /// How to keep room for it at the next start, or nothing.
        hint: String,
    },
    /// One of its core modules defines more than a pool slot allows.
    #[error(
        "needs {needs} {what} in one core module; the pool was sized for {reserved}; \
         restart the host to serve it"
    )]
    PerModule {
        /// `memories` or `tables`.
        what: &'static str,
        /// Most in one module of the component.
        needs: u32,
        /// What the pool allows per module.
        reserved: u32,
    },
    /// A table starts larger than a pool slot.
    #[error(
        "needs a table of {needs} elements; the pool's table slots hold {reserved}; \
         restart the host to serve it"
    )]
    TableElements {
        /// Its largest table's initial elements.
        needs: u64,
        /// Elements per table slot.
        reserved: u64,
    },
    /// It starts with more linear memory than a connection may use.
    #[error("needs {needs} bytes of linear memory at instantiation; --guest-memory allows {limit}")]
    GuestMemory {
        /// Initial bytes, all memories together.
        needs: u64,
        /// `--guest-memory`.
        limit: u64,
    },
}

/// Read what one instance of the component in `bytes` costs the pool,
/// without compiling it: its imports from the binary, its cost from
/// wasmtime's own translation (see the module docs).
pub fn measure(bytes: &[u8]) -> Result<Footprint, FootprintError> {
    let imports = outer_imports(bytes)?;
    let cost =
        instantiations(bytes).map_err(|error| FootprintError::Translate(format!("{error:#}")))?;
    Ok(Footprint { cost, imports })
}

/// The names of the outermost component's imports, in order.
fn outer_imports(bytes: &[u8]) -> Result<Vec<String>, FootprintError> {
    let mut imports = Vec::new();
    // Nesting: every header (the outermost and each nested module's or
    // component's) opens a level, every `End` closes one.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != Encoding::Component {
                    return Err(FootprintError::NotAComponent);
                }
                depth += 1;
            }
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    imports.push(import?.name.name.to_owned());
                }
            }
            Payload::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Ok(imports);
                }
            }
            _ => {}
        }
    }
    // `parse_all` ends with the outermost `End` or an error.
    Err(FootprintError::NotAComponent)
}

/// What one instance costs, as wasmtime's pooling allocator counts it
/// (`validate_component`): one core instance per module instantiation in
/// the translated component's initializers, and what each instantiated
/// module defines.
fn instantiations(bytes: &[u8]) -> wasmtime_environ::error::Result<Cost> {
    use wasmtime_environ::MemoryInit;
    use wasmtime_environ::component::{
        ComponentTypesBuilder, GlobalInitializer, InstantiateModule, Translator,
    };
    let tunables = wasmtime_environ::Tunables::default_host();
    let scope = wasmtime_environ::ScopeVec::new();
    let mut validator = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    let mut types = ComponentTypesBuilder::new(&validator);
    let (translation, modules) =
        Translator::new(&tunables, &mut validator, &mut types, &scope).translate(bytes)?;
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let mut cost = Cost::default();
    for init in &translation.component.initializers {
        let GlobalInitializer::InstantiateModule(instantiate, _) = init else {
            continue;
        };
        cost.core_instances = cost.core_instances.saturating_add(1);
        // An imported module's definitions are unknown: one instance only.
        let InstantiateModule::Static(index, _) = instantiate else {
            continue;
        };
        let module = &modules[*index].module;
        let memories = module.memories.values().skip(module.num_imported_memories);
        for memory in memories {
            let bytes = memory.minimum_byte_size().unwrap_or(u64::MAX);
            cost.memory_bytes = cost.memory_bytes.saturating_add(bytes);
        }
        // What instantiation writes into memory: the active data segments,
        // still listed as parsed here.
        if let MemoryInit::Unprocessed(segments) = &modules[*index].memory_init {
            let data: usize = segments.iter().map(|segment| segment.data.len()).sum();
            cost.data_bytes = cost
                .data_bytes
                .saturating_add(u64::try_from(data).unwrap_or(u64::MAX));
        }
        for table in module.tables.values().skip(module.num_imported_tables) {
            cost.table_elements = cost.table_elements.saturating_add(table.limits.min);
            cost.largest_table = cost.largest_table.max(table.limits.min);
        }
        let (memories, tables) = (
            count(module.num_defined_memories()),
            count(module.num_defined_tables()),
        );
        cost.memories = cost.memories.saturating_add(memories);
        cost.tables = cost.tables.saturating_add(tables);
        cost.memories_per_module = cost.memories_per_module.max(memories);
        cost.tables_per_module = cost.tables_per_module.max(tables);
    }
    Ok(cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A section: id, length, body.
    fn section(id: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![id];
        leb(&mut out, body.len());
        out.extend_from_slice(body);
        out
    }

    fn leb(out: &mut Vec<u8>, mut n: usize) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// A section holding `items`, each already encoded.
    fn vec_section(id: u8, items: &[Vec<u8>]) -> Vec<u8> {
        let mut body = Vec::new();
        leb(&mut body, items.len());
        items.iter().for_each(|item| body.extend_from_slice(item));
        section(id, &body)
    }

    /// A core module defining memories of `pages` and tables of `elements`.
    fn module(pages: &[u8], elements: &[u8]) -> Vec<u8> {
        let mut out = b"\0asm\x01\0\0\0".to_vec();
        if !elements.is_empty() {
            let tables: Vec<_> = elements.iter().map(|&n| vec![0x70, 0x00, n]).collect();
            out.extend(vec_section(4, &tables));
        }
        if !pages.is_empty() {
            let memories: Vec<_> = pages.iter().map(|&n| vec![0x00, n]).collect();
            out.extend(vec_section(5, &memories));
        }
        out
    }

    fn component(sections: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"\0asm\x0d\0\x01\0".to_vec();
        sections.iter().for_each(|s| out.extend_from_slice(s));
        out
    }

    /// Core instances: `Some(m)` instantiates module m, `None` is a bag of
    /// (no) exports.
    fn core_instances(of: &[Option<u8>]) -> Vec<u8> {
        let items: Vec<_> = of
            .iter()
            .map(|m| match m {
                Some(m) => vec![0x00, *m, 0x00],
                None => vec![0x01, 0x00],
            })
            .collect();
        vec_section(2, &items)
    }

    /// A component that instantiates `module(pages, elements)` once and
    /// `module(&[], &[])` twice, and makes one instance of exports.
    fn flat() -> Vec<u8> {
        component(&[
            section(1, &module(&[2], &[10])),
            section(1, &module(&[], &[])),
            core_instances(&[Some(0), Some(1), None, Some(1)]),
        ])
    }

    /// A component whose inner component aliases the outer's module (one
    /// page of memory) and instantiates it twice; the outer instantiates
    /// the inner twice and the module once.
    fn nested() -> Vec<u8> {
        // Outer alias: sort core module (0x00 0x11), outer (0x02), count 1, index 0.
        let alias = vec_section(6, &[vec![0x00, 0x11, 0x02, 0x01, 0x00]]);
        let inner = component(&[alias, core_instances(&[Some(0), Some(0)])]);
        let instantiate_inner = vec_section(5, &[vec![0x00, 0x00, 0x00]]);
        component(&[
            section(1, &module(&[1], &[])),
            section(4, &inner),
            instantiate_inner.clone(),
            instantiate_inner,
            core_instances(&[Some(0)]),
        ])
    }

    #[test]
    fn core_instances_and_what_their_modules_define_are_counted() {
        let cost = measure(&flat()).unwrap().cost;
        assert_eq!(
            cost,
            Cost {
                core_instances: 3,
                memories: 1,
                tables: 1,
                memory_bytes: 2 << 16,
                data_bytes: 0,
                table_elements: 10,
                memories_per_module: 1,
                tables_per_module: 1,
                largest_table: 10,
            }
        );
    }

    #[test]
    fn nested_components_count_once_per_instantiation() {
        let cost = measure(&nested()).unwrap().cost;
        assert_eq!(cost.core_instances, 5);
        assert_eq!(cost.memories, 5);
        assert_eq!(cost.memory_bytes, 5 << 16);
        assert_eq!(cost.tables, 0);
    }

    #[test]
    fn several_memories_and_tables_in_one_module_are_seen() {
        let bytes = component(&[
            section(1, &module(&[1, 3], &[5, 7, 9])),
            core_instances(&[Some(0)]),
        ]);
        let cost = measure(&bytes).unwrap().cost;
        assert_eq!((cost.memories_per_module, cost.tables_per_module), (2, 3));
        assert_eq!((cost.memory_bytes, cost.largest_table), (4 << 16, 9));
        assert_eq!(cost.table_elements, 21);
    }

    #[test]
    fn data_segments_count_once_per_instantiation() {
        // One page of memory, an active segment of 100 bytes at 0 and a
        // passive one of 20 (data section, id 11), which instantiation
        // does not write.
        let mut with_data = module(&[1], &[]);
        let active = [&[0x00, 0x41, 0x00, 0x0b, 100][..], &[7; 100]].concat();
        let passive = [&[0x01, 20][..], &[9; 20]].concat();
        with_data.extend(vec_section(11, &[active, passive]));
        let bytes = component(&[
            section(1, &with_data),
            section(1, &module(&[1], &[])),
            core_instances(&[Some(0), Some(0), Some(1)]),
        ]);
        let cost = measure(&bytes).unwrap().cost;
        assert_eq!(cost.data_bytes, 200);
        assert_eq!(cost.memory_bytes, 3 << 16);
    }

    #[test]
    fn what_is_not_a_component_is_refused() {
        assert!(matches!(
            measure(&module(&[1], &[])),
            Err(FootprintError::NotAComponent)
        ));
        assert!(matches!(
            measure(b"not wasm at all"),
            Err(FootprintError::Parse(_))
        ));
        let bad = component(&[core_instances(&[Some(4)])]);
        assert!(matches!(
            measure(&bad),
            Err(FootprintError::Translate(message)) if message.contains("module index out of bounds")
        ));
    }

    /// An engine with this pool and 1 MiB memory slots.
    fn engine(pool: PoolingAllocationConfig) -> wasmtime::Engine {
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .memory_reservation(1 << 20)
            .memory_guard_size(64 << 10)
            .memory_reservation_for_growth(0)
            .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        wasmtime::Engine::new(&config).unwrap()
    }

    /// The bug this sizing fixes: a component needing more core instances
    /// than the old fixed ratio (8 per connection) ran the pool dry before
    /// the connection limit. Now every slot can hold one, all at once.
    #[test]
    fn every_slot_holds_an_instance_of_a_component_bigger_than_the_floor() {
        let bytes = component(&[
            section(1, &module(&[1], &[1])),
            section(1, &module(&[], &[])),
            core_instances(&[Some(0), Some(1), Some(1), Some(1), Some(1)]),
            core_instances(&[Some(1), Some(1), Some(1), Some(1), Some(1)]),
        ]);
        let cost = measure(&bytes).unwrap().cost;
        assert_eq!(cost.core_instances, 10);
        let plan = PoolPlan::new(4, 8, 1 << 20, &cost);
        let engine = engine(plan.allocation_config());
        let component = wasmtime::component::Component::new(&engine, &bytes).unwrap();
        let pre = wasmtime::component::Linker::<()>::new(&engine)
            .instantiate_pre(&component)
            .unwrap();
        let mut stores = Vec::new();
        for _ in 0..plan.slots {
            let mut store = wasmtime::Store::new(&engine, ());
            pre.instantiate(&mut store).unwrap();
            stores.push(store);
        }
        // And not one more: the pool is exactly what was planned.
        let mut store = wasmtime::Store::new(&engine, ());
        let error = pre.instantiate(&mut store).err().unwrap();
        assert!(format!("{error:#}").contains("maximum"), "{error:#}");
    }

    /// wasmtime, with per-component limits of exactly what was measured,
    /// accepts each component, and refuses it with one core instance or
    /// memory less: it counts what we count.
    #[test]
    fn wasmtime_counts_the_same() {
        for bytes in [flat(), nested()] {
            let cost = measure(&bytes).unwrap().cost;
            let plan = PoolPlan::new(1, 1, 1 << 20, &cost);
            assert_eq!(plan.core_instances, cost.core_instances);
            let compile = |pool| wasmtime::component::Component::new(&engine(pool), &bytes);
            compile(plan.allocation_config()).unwrap();
            let mut fewer = plan.allocation_config();
            fewer.max_core_instances_per_component(cost.core_instances - 1);
            let error = compile(fewer).err().unwrap().to_string();
            assert!(error.contains("core module instances"), "{error}");
            let mut fewer = plan.allocation_config();
            fewer.max_memories_per_component(cost.memories - 1);
            let error = compile(fewer).err().unwrap().to_string();
            assert!(error.contains("linear memories"), "{error}");
        }
    }

    #[test]
    fn the_pool_keeps_its_floor_and_grows_to_the_component() {
        let small = Cost {
            core_instances: 3,
            memories: 1,
            tables: 2,
            ..Cost::default()
        };
        let plan = PoolPlan::new(10_000, 8, 256 << 20, &small);
        assert_eq!(plan.slots, 10_016);
        assert_eq!((plan.core_instances, plan.memories, plan.tables), (8, 1, 4));
        assert_eq!(plan.total_core_instances(), 80_128);
        let big = Cost {
            core_instances: 14,
            memories: 2,
            tables: 9,
            ..Cost::default()
        };
        let plan = PoolPlan::new(10, 8, 256 << 20, &big);
        assert_eq!(
            (plan.core_instances, plan.memories, plan.tables),
            (14, 2, 9)
        );
        assert_eq!(plan.admit(&big), Ok(()));
    }

    #[test]
    fn a_component_bigger_than_the_pool_is_refused_saying_why() {
        let plan = PoolPlan::new(10_000, 8, 1 << 20, &Cost::default());
        assert_eq!(
            plan.admit(&Cost {
                core_instances: 14,
                ..Cost::default()
            })
            .unwrap_err()
            .to_string(),
            "needs 14 core instances per connection; the pool was sized for 8 × 10016 \
             connections; restart the host to serve it (--pool-core-instances 14 keeps room \
             for it)"
        );
        let two_memories = Cost {
            memories: 2,
            ..Cost::default()
        };
        assert!(matches!(
            plan.admit(&two_memories),
            Err(DoesNotFit::PerConnection {
                what: "memories",
                needs: 2,
                reserved: 1,
                ..
            })
        ));
        let two_in_a_module = Cost {
            tables: 2,
            tables_per_module: 2,
            ..Cost::default()
        };
        assert!(matches!(
            plan.admit(&two_in_a_module),
            Err(DoesNotFit::PerModule { what: "tables", .. })
        ));
        let long_table = Cost {
            largest_table: 20_001,
            ..Cost::default()
        };
        assert!(matches!(
            plan.admit(&long_table),
            Err(DoesNotFit::TableElements { .. })
        ));
        let fat = Cost {
            memory_bytes: (1 << 20) + 1,
            ..Cost::default()
        };
        assert_eq!(
            plan.admit(&fat).unwrap_err().to_string(),
            "needs 1048577 bytes of linear memory at instantiation; --guest-memory allows 1048576"
        );
    }
}
