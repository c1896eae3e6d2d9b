//! Generated types and gRPC stubs of the Storage Write API (`proto/`), nothing else.
//! Everything of `google.cloud.bigquery.storage.v1` is re-exported here, and [`descriptor`]
//! holds the row descriptor messages (`google.protobuf.DescriptorProto` on the wire, with the
//! `column_name` field option kept).

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

/// `datafusion_bigquery`: the crate's own messages.
pub mod datafusion_bigquery {
    /// `datafusion_bigquery.descriptor`: the subset of `google/protobuf/descriptor.proto`
    /// used for row descriptors, with the Storage Write API's `column_name` field option.
    pub mod descriptor {
        tonic::include_proto!("datafusion_bigquery.descriptor");
    }
}

/// Generated packages, nested as their proto package names.
pub mod google {
    /// `google.rpc`.
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
    /// `google.cloud`.
    pub mod cloud {
        /// `google.cloud.bigquery`.
        pub mod bigquery {
            /// `google.cloud.bigquery.storage`.
            pub mod storage {
                /// `google.cloud.bigquery.storage.v1`.
                pub mod v1 {
                    tonic::include_proto!("google.cloud.bigquery.storage.v1");
                }
            }
        }
    }
}

pub use datafusion_bigquery::descriptor;
pub use google::cloud::bigquery::storage::v1::*;
pub use google::rpc;
