//! Generated types and gRPC stubs of the Storage Write API (`proto/`), nothing else.
//! Everything of `google.cloud.bigquery.storage.v1` is re-exported here.

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

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

pub use google::cloud::bigquery::storage::v1::*;
pub use google::rpc;
