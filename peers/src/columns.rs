//! The lineitem columns both clients send, and what each BigQuery type becomes on the wire.

use arrow::datatypes::DataType;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto};

/// A BigQuery column type of the lineitem table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// INT64.
    Int64,
    /// NUMERIC: Decimal128(38, 9) in Arrow, its decimal string in proto rows.
    Numeric,
    /// STRING.
    String,
    /// DATE: Date32 in Arrow, int32 days since the epoch in proto rows.
    Date,
}

/// Name and BigQuery type of each lineitem column, in table order (proto field number = index + 1).
pub const LINEITEM: [(&str, Kind); 16] = [
    ("l_orderkey", Kind::Int64),
    ("l_partkey", Kind::Int64),
    ("l_suppkey", Kind::Int64),
    ("l_linenumber", Kind::Int64),
    ("l_quantity", Kind::Numeric),
    ("l_extendedprice", Kind::Numeric),
    ("l_discount", Kind::Numeric),
    ("l_tax", Kind::Numeric),
    ("l_returnflag", Kind::String),
    ("l_linestatus", Kind::String),
    ("l_shipdate", Kind::Date),
    ("l_commitdate", Kind::Date),
    ("l_receiptdate", Kind::Date),
    ("l_shipinstruct", Kind::String),
    ("l_shipmode", Kind::String),
    ("l_comment", Kind::String),
];

impl Kind {
    /// The Arrow type BigQuery's Storage Write API expects for this column type.
    pub fn arrow_type(self) -> DataType {
        match self {
            Kind::Int64 => DataType::Int64,
            Kind::Numeric => DataType::Decimal128(38, 9),
            Kind::String => DataType::Utf8,
            Kind::Date => DataType::Date32,
        }
    }

    /// The Arrow type a column is cast to before it becomes a proto field.
    pub fn proto_source_type(self) -> DataType {
        match self {
            Kind::Int64 => DataType::Int64,
            Kind::Numeric | Kind::String => DataType::Utf8,
            Kind::Date => DataType::Date32,
        }
    }

    /// The proto2 field type of this column type.
    fn proto_type(self) -> Type {
        match self {
            Kind::Int64 => Type::Int64,
            Kind::Numeric | Kind::String => Type::String,
            Kind::Date => Type::Int32,
        }
    }
}

/// The proto2 descriptor of one lineitem row: every field optional, numbered in table order.
pub fn lineitem_descriptor() -> DescriptorProto {
    let field = LINEITEM
        .iter()
        .zip(1..)
        .map(|(&(name, kind), number)| FieldDescriptorProto {
            name: Some(name.to_string()),
            number: Some(number),
            label: Some(Label::Optional.into()),
            r#type: Some(kind.proto_type().into()),
            ..Default::default()
        })
        .collect();
    DescriptorProto {
        name: Some("Lineitem".to_string()),
        field,
        ..Default::default()
    }
}
