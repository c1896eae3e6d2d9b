//! Codecs that carry a BigQuery table and the INSERT's two plan nodes between Ballista's
//! client, scheduler and executors: the table's name, BigQuery schema and options, never a
//! live connection (each process connects its own client, lazily, with the same credential
//! rules). Everything else goes to Ballista's own codecs, which still encode their nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::client::{ClientConfig, WriteClient};
use crate::datafusion::checkpointed::{CheckpointPlan, Checkpointed};
use crate::datafusion::insert_mode::InsertMode;
use crate::datafusion::overwriting::Overwriting;
use crate::datafusion::{BigQueryCommitExec, BigQueryTable, BigQueryWriteExec};
use crate::load::Loader;
use crate::options::BigQueryOptions;
use crate::proto::TableSchema;
use crate::table_ref::TableRef;
use crate::tables::Overwrite;

/// First bytes of everything these codecs write, so that decoding knows ours from Ballista's.
const MAGIC: &[u8] = b"datafusion-bigquery/1\n";

/// What travels: one of our nodes and the loader behind it.
#[derive(Debug, Serialize, Deserialize)]
struct Encoded {
    node: Node,
    table: TableRef,
    /// The BigQuery table schema, as its protobuf bytes.
    schema: Vec<u8>,
    options: HashMap<String, String>,
    /// The checkpointed load the node belongs to, if any.
    #[serde(default)]
    checkpoint: Option<CheckpointPlan>,
    #[serde(default)]
    overwrite: Option<Overwrite>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
enum Node {
    Table,
    Write,
    Commit,
}

fn encode(node: Node, loader: &Loader, mode: &InsertMode, buf: &mut Vec<u8>) -> Result<()> {
    let encoded = Encoded {
        node,
        table: loader.table().clone(),
        schema: loader.table_schema().encode_to_vec(),
        options: loader.options().to_table_options(),
        checkpoint: mode.checkpoint.as_ref().map(|c| c.checkpoint_plan().clone()),
        overwrite: mode.overwrite.as_ref().map(|o| o.overwrite_plan().clone()),
    };
    buf.extend_from_slice(MAGIC);
    serde_json::to_writer(buf, &encoded).map_err(|e| DataFusionError::Internal(format!("encoding {e}")))
}

/// A decoded node: which, its loader, and its checkpointed load.
type Decoded = (Node, Loader, InsertMode);

/// Ours, or `None` for Ballista's.
fn decode(buf: &[u8]) -> Result<Option<Decoded>> {
    let Some(body) = buf.strip_prefix(MAGIC) else {
        return Ok(None);
    };
    let encoded: Encoded = serde_json::from_slice(body)
        .map_err(|e| DataFusionError::Internal(format!("decoding a BigQuery node: {e}")))?;
    let schema = TableSchema::decode(encoded.schema.as_slice())
        .map_err(|e| DataFusionError::Internal(format!("decoding a BigQuery schema: {e}")))?;
    let mut options = BigQueryOptions::default();
    options.apply_table_options(&encoded.options)?;
    let client = shared_client(&options.client_config())?;
    Ok(Some((
        encoded.node,
        Loader::new(client, encoded.table, schema, options),
        InsertMode {
            checkpoint: encoded.checkpoint.map(|plan| Arc::new(Checkpointed::from_plan(plan))),
            overwrite: encoded.overwrite.map(|plan| Arc::new(Overwriting::from_plan(plan))),
        },
    )))
}

/// One lazily connected client per connection setting in this process, shared by every
/// decoded plan (a process runs many tasks).
fn shared_client(config: &ClientConfig) -> Result<WriteClient> {
    static CLIENTS: OnceLock<Mutex<HashMap<ClientConfig, WriteClient>>> = OnceLock::new();
    let clients = CLIENTS.get_or_init(Mutex::default);
    let mut clients = clients
        .lock()
        .map_err(|_| DataFusionError::Internal("client cache poisoned".into()))?;
    if let Some(client) = clients.get(config) {
        return Ok(client.clone());
    }
    let client = WriteClient::connect_lazily(config)?;
    clients.insert(config.clone(), client.clone());
    Ok(client)
}

/// The logical codec: [`BigQueryTable`]s, then Ballista's.
#[derive(Debug)]
pub struct BigQueryLogicalCodec {
    inner: Arc<dyn LogicalExtensionCodec>,
}

impl Default for BigQueryLogicalCodec {
    fn default() -> Self {
        Self {
            inner: Arc::new(BallistaLogicalExtensionCodec::default()),
        }
    }
}

impl LogicalExtensionCodec for BigQueryLogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: arrow::datatypes::SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match decode(buf)? {
            Some((Node::Table, loader, _)) => Ok(Arc::new(BigQueryTable::new(loader).distributed())),
            Some((node, ..)) => Err(DataFusionError::Internal(format!("expected a table, got {node:?}"))),
            None => self.inner.try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        match node.downcast_ref::<BigQueryTable>() {
            Some(table) => encode(Node::Table, table.loader(), &InsertMode::default(), buf),
            None => self.inner.try_encode_table_provider(table_ref, node, buf),
        }
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn datafusion::datasource::file_format::FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn datafusion::datasource::file_format::FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }
}

/// The physical codec: [`BigQueryWriteExec`] and [`BigQueryCommitExec`], then Ballista's
/// (its shuffle nodes and the rest).
#[derive(Debug)]
pub struct BigQueryPhysicalCodec {
    inner: Arc<dyn PhysicalExtensionCodec>,
}

impl Default for BigQueryPhysicalCodec {
    fn default() -> Self {
        Self {
            inner: Arc::new(BallistaPhysicalExtensionCodec::default()),
        }
    }
}

impl PhysicalExtensionCodec for BigQueryPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some((node, loader, mode)) = decode(buf)? else {
            return self.inner.try_decode(buf, inputs, ctx, proto_converter);
        };
        let [input] = inputs else {
            return Err(DataFusionError::Internal(format!(
                "a BigQuery {node:?} node has one input, not {}",
                inputs.len()
            )));
        };
        match node {
            Node::Write => Ok(Arc::new(
                BigQueryWriteExec::distributed(input.clone(), loader).with_mode(mode),
            )),
            Node::Commit => Ok(Arc::new(BigQueryCommitExec::new(input.clone(), loader).with_mode(mode))),
            Node::Table => Err(DataFusionError::Internal("a table is not a plan node".into())),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if let Some(write) = node.downcast_ref::<BigQueryWriteExec>() {
            return encode(Node::Write, write.loader(), write.mode(), buf);
        }
        if let Some(commit) = node.downcast_ref::<BigQueryCommitExec>() {
            return encode(Node::Commit, commit.loader(), commit.mode(), buf);
        }
        self.inner.try_encode(node, buf, proto_converter)
    }
}
