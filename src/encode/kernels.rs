//! Column-at-a-time encoding of one batch: every column first adds its fields' sizes to each
//! row's length (checking its values on the way), then, once the buffer is allocated at its
//! exact size, writes its field into each row's slot. No per-row allocation, no per-row
//! dispatch over types: each column's loop is specialized for its Arrow type.
//!
//! The common flat columns read their input array directly (integers, floats, booleans,
//! strings and binaries of every offset kind and views, DATE, TIMESTAMP, NUMERIC from
//! decimals at scale 9 or less). Any other column is converted to its canonical type and
//! written row by row by [`FieldWriter`] into a side buffer, whose slices are then copied.

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, GenericByteArray, GenericByteViewArray, PrimitiveArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::ArrowNativeType;
use arrow::datatypes::{
    BinaryType, BinaryViewType, ByteArrayType, ByteViewType, DataType, Date32Type, Decimal128Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, LargeBinaryType, LargeUtf8Type, StringViewType, TimeUnit,
    TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type, Utf8Type,
};
use prost::encoding::{WireType, encode_key, encoded_len_varint};

use super::WireEncoding;
use super::columns::{FieldWriter, WriteOptions};
use super::value_error::ValueError;
use crate::proto::TableFieldSchema;
use crate::proto::table_field_schema::{Mode, Type};
use crate::schema::{field_mode, field_type, is_picosecond_timestamp};
use crate::values;

/// One column of one batch, ready to be measured and written.
pub(crate) trait ColumnKernel {
    /// Adds the encoded size of this field to each row's length, or returns the first row
    /// whose value cannot be written.
    fn measure(&self, lens: &mut [usize]) -> Result<(), ValueError>;

    /// Writes this field of each row at `pos[row]` and advances it. Only called after a
    /// successful `measure`, on a buffer sized from the lengths.
    fn write(&self, buf: &mut [u8], pos: &mut [usize]);

    /// Checks every value as `measure` does, without measuring (Arrow rows): the first row
    /// whose value cannot be written. `scratch` has a slot per row, for kernels that can only
    /// check by measuring.
    fn check(&self, scratch: &mut [usize]) -> Result<(), ValueError> {
        self.measure(scratch)
    }
}

/// A field key (tag and wire type), encoded once per column.
#[derive(Clone, Copy)]
struct Key {
    bytes: [u8; 5],
    len: usize,
}

impl Key {
    fn new(tag: u32, wire_type: WireType) -> Self {
        let mut out = Vec::with_capacity(5);
        encode_key(tag, wire_type, &mut out);
        let mut bytes = [0u8; 5];
        bytes[..out.len()].copy_from_slice(&out);
        Key { bytes, len: out.len() }
    }

    #[inline]
    fn put(&self, buf: &mut [u8], at: &mut usize) {
        if self.len == 1 {
            buf[*at] = self.bytes[0];
            *at += 1;
        } else {
            put_bytes(buf, at, &self.bytes[..self.len]);
        }
    }
}

/// Copies `src` to `buf` at `*at`. Short values, the common case for row fields, are copied
/// with at most two overlapping word moves instead of a call to `memcpy`.
#[inline]
fn put_bytes(buf: &mut [u8], at: &mut usize, src: &[u8]) {
    let n = src.len();
    let dst = &mut buf[*at..*at + n];
    match n {
        0 => {}
        1..=3 => {
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        17..=32 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..].copy_from_slice(&src[n - 16..]);
        }
        _ => dst.copy_from_slice(src),
    }
    *at += n;
}

/// Length of `value` as a varint.
#[inline]
fn varint_len(value: u64) -> usize {
    encoded_len_varint(value)
}

/// Writes `value` as a varint at `*at`.
#[inline]
fn put_varint(buf: &mut [u8], at: &mut usize, mut value: u64) {
    if value < 0x80 {
        buf[*at] = value as u8;
        *at += 1;
        return;
    }
    let n = varint_len(value);
    let dst = &mut buf[*at..*at + n];
    if let Some((last, rest)) = dst.split_last_mut() {
        for byte in rest {
            *byte = (value as u8) | 0x80;
            value >>= 7;
        }
        *last = value as u8;
    }
    *at += n;
}

/// What a column does with NULLs.
struct Nulls<'a> {
    name: &'a str,
    buffer: Option<&'a NullBuffer>,
}

impl<'a> Nulls<'a> {
    fn of(array: &'a dyn Array, name: &'a str) -> Self {
        Nulls {
            name,
            buffer: array.nulls(),
        }
    }

    /// Fails at the first NULL of a REQUIRED column.
    fn check_required(&self, mode: Mode) -> Result<(), ValueError> {
        if mode != Mode::Required {
            return Ok(());
        }
        let Some(nulls) = self.buffer.filter(|n| n.null_count() > 0) else {
            return Ok(());
        };
        let row = (0..nulls.len()).find(|i| nulls.is_null(*i)).unwrap_or(0);
        Err(ValueError::null_in_required(row).within(self.name, None))
    }

    #[inline]
    fn is_valid(&self, row: usize) -> bool {
        self.buffer.is_none_or(|n| n.is_valid(row))
    }

    fn any(&self) -> bool {
        self.buffer.is_some_and(|n| n.null_count() > 0)
    }
}

/// Plans the kernel of one column of a batch: a direct one for the common flat types, else
/// `None`, and the caller writes the canonical array row by row ([`Prewritten`]).
pub(crate) fn plan<'a>(
    column: &'a TableFieldSchema,
    tag: u32,
    input: &'a ArrayRef,
    options: WriteOptions,
) -> Option<Box<dyn ColumnKernel + 'a>> {
    let mode = field_mode(column);
    if mode == Mode::Repeated || column.max_length > 0 || column.precision > 0 {
        return None;
    }
    let name = column.name.as_str();
    let ty = field_type(column);
    let kernel: Box<dyn ColumnKernel + 'a> = match (ty, input.data_type()) {
        (Type::Int64, DataType::Int64) => varints::<Int64Type>(input, tag, mode, name, None),
        (Type::Int64, DataType::Int32) => varints::<Int32Type>(input, tag, mode, name, None),
        (Type::Int64, DataType::Int16) => varints::<Int16Type>(input, tag, mode, name, None),
        (Type::Int64, DataType::Int8) => varints::<Int8Type>(input, tag, mode, name, None),
        (Type::Int64, DataType::UInt32) => varints::<UInt32Type>(input, tag, mode, name, None),
        (Type::Int64, DataType::UInt16) => varints::<UInt16Type>(input, tag, mode, name, None),
        (Type::Int64, DataType::UInt8) => varints::<UInt8Type>(input, tag, mode, name, None),
        (Type::Date, DataType::Date32) => varints::<Date32Type>(
            input,
            tag,
            mode,
            name,
            Some(Range {
                min: i64::from(values::DATE_MIN_DAYS),
                max: i64::from(values::DATE_MAX_DAYS),
                reason: values::DATE_OUT_OF_RANGE,
            }),
        ),
        (Type::Timestamp, DataType::Timestamp(TimeUnit::Microsecond, _)) if !is_picosecond_timestamp(column) => {
            varints::<TimestampMicrosecondType>(
                input,
                tag,
                mode,
                name,
                Some(Range {
                    min: values::MICROS_MIN,
                    max: values::MICROS_MAX,
                    reason: values::TIMESTAMP_OUT_OF_RANGE,
                }),
            )
        }
        (Type::Double, DataType::Float64) => doubles::<Float64Type>(input, tag, mode, name),
        (Type::Double, DataType::Float32) => doubles::<Float32Type>(input, tag, mode, name),
        (Type::Bool, DataType::Boolean) => Box::new(Bools {
            key: Key::new(tag, WireType::Varint),
            array: input.as_boolean(),
            nulls: Nulls::of(input.as_ref(), name),
            mode,
        }),
        (Type::String, DataType::Utf8) => byte_strings::<Utf8Type>(input, tag, mode, name),
        (Type::String, DataType::LargeUtf8) => byte_strings::<LargeUtf8Type>(input, tag, mode, name),
        (Type::String, DataType::Utf8View) => byte_views::<StringViewType>(input, tag, mode, name),
        (Type::Bytes, DataType::Binary) => byte_strings::<BinaryType>(input, tag, mode, name),
        (Type::Bytes, DataType::LargeBinary) => byte_strings::<LargeBinaryType>(input, tag, mode, name),
        (Type::Bytes, DataType::BinaryView) => byte_views::<BinaryViewType>(input, tag, mode, name),
        (Type::Numeric, DataType::Decimal128(_, scale))
            if options.encoding == WireEncoding::Packed && (0..=values::NUMERIC_SCALE).contains(scale) =>
        {
            Box::new(Numerics {
                key: Key::new(tag, WireType::LengthDelimited),
                array: input.as_primitive::<Decimal128Type>(),
                nulls: Nulls::of(input.as_ref(), name),
                mode,
                multiplier: 10i128.pow((values::NUMERIC_SCALE - scale) as u32),
                max_input: values::NUMERIC_MAX_UNSCALED / 10i128.pow((values::NUMERIC_SCALE - scale) as u32),
            })
        }
        _ => return None,
    };
    Some(kernel)
}

/// An inclusive range of valid values and the reason given outside it.
#[derive(Clone, Copy)]
struct Range {
    min: i64,
    max: i64,
    reason: &'static str,
}

/// Integer-like columns written as varints (sign-extended to 64 bits).
struct Varints<'a, T: ArrowPrimitiveType> {
    key: Key,
    array: &'a PrimitiveArray<T>,
    nulls: Nulls<'a>,
    mode: Mode,
    range: Option<Range>,
}

fn varints<'a, T>(
    input: &'a ArrayRef,
    tag: u32,
    mode: Mode,
    name: &'a str,
    range: Option<Range>,
) -> Box<dyn ColumnKernel + 'a>
where
    T: ArrowPrimitiveType,
    T::Native: Into<i64>,
{
    Box::new(Varints::<T> {
        key: Key::new(tag, WireType::Varint),
        array: input.as_primitive::<T>(),
        nulls: Nulls::of(input.as_ref(), name),
        mode,
        range,
    })
}

impl<T> ColumnKernel for Varints<'_, T>
where
    T: ArrowPrimitiveType,
    T::Native: Into<i64>,
{
    fn check(&self, _: &mut [usize]) -> Result<(), ValueError> {
        self.nulls.check_required(self.mode)?;
        let Some(range) = self.range else {
            return Ok(());
        };
        let bad = self.array.values().iter().enumerate().find(|(row, v)| {
            let v: i64 = (**v).into();
            (v < range.min || v > range.max) && self.nulls.is_valid(*row)
        });
        match bad {
            Some((row, _)) => Err(invalid(self.array, row, self.nulls.name, range.reason)),
            None => Ok(()),
        }
    }

    fn measure(&self, lens: &mut [usize]) -> Result<(), ValueError> {
        self.check(lens)?;
        let values = self.array.values();
        let key = self.key.len;
        if self.nulls.any() {
            for (row, (len, v)) in lens.iter_mut().zip(values.iter()).enumerate() {
                if self.nulls.is_valid(row) {
                    *len += key + varint_len((*v).into() as u64);
                }
            }
        } else {
            for (len, v) in lens.iter_mut().zip(values.iter()) {
                *len += key + varint_len((*v).into() as u64);
            }
        }
        Ok(())
    }

    fn write(&self, buf: &mut [u8], pos: &mut [usize]) {
        for (row, (at, v)) in pos.iter_mut().zip(self.array.values().iter()).enumerate() {
            if self.nulls.is_valid(row) {
                self.key.put(buf, at);
                put_varint(buf, at, (*v).into() as u64);
            }
        }
    }
}

/// FLOAT64 columns from 64- or 32-bit floats (widened exactly), as fixed 64-bit fields.
struct Doubles<'a, T: ArrowPrimitiveType> {
    key: Key,
    array: &'a PrimitiveArray<T>,
    nulls: Nulls<'a>,
    mode: Mode,
}

fn doubles<'a, T>(input: &'a ArrayRef, tag: u32, mode: Mode, name: &'a str) -> Box<dyn ColumnKernel + 'a>
where
    T: ArrowPrimitiveType,
    T::Native: Into<f64>,
{
    Box::new(Doubles::<T> {
        key: Key::new(tag, WireType::SixtyFourBit),
        array: input.as_primitive::<T>(),
        nulls: Nulls::of(input.as_ref(), name),
        mode,
    })
}

impl<T> ColumnKernel for Doubles<'_, T>
where
    T: ArrowPrimitiveType,
    T::Native: Into<f64>,
{
    fn check(&self, _: &mut [usize]) -> Result<(), ValueError> {
        self.nulls.check_required(self.mode)
    }

    fn measure(&self, lens: &mut [usize]) -> Result<(), ValueError> {
        self.nulls.check_required(self.mode)?;
        let size = self.key.len + 8;
        for (row, len) in lens.iter_mut().enumerate() {
            if self.nulls.is_valid(row) {
                *len += size;
            }
        }
        Ok(())
    }

    fn write(&self, buf: &mut [u8], pos: &mut [usize]) {
        for (row, (at, v)) in pos.iter_mut().zip(self.array.values().iter()).enumerate() {
            if self.nulls.is_valid(row) {
                self.key.put(buf, at);
                let v: f64 = (*v).into();
                buf[*at..*at + 8].copy_from_slice(&v.to_le_bytes());
                *at += 8;
            }
        }
    }
}

/// BOOL columns.
struct Bools<'a> {
    key: Key,
    array: &'a BooleanArray,
    nulls: Nulls<'a>,
    mode: Mode,
}

impl ColumnKernel for Bools<'_> {
    fn check(&self, _: &mut [usize]) -> Result<(), ValueError> {
        self.nulls.check_required(self.mode)
    }

    fn measure(&self, lens: &mut [usize]) -> Result<(), ValueError> {
        self.nulls.check_required(self.mode)?;
        let size = self.key.len + 1;
        for (row, len) in lens.iter_mut().enumerate() {
            if self.nulls.is_valid(row) {
                *len += size;
            }
        }
        Ok(())
    }

    fn write(&self, buf: &mut [u8], pos: &mut [usize]) {
        for (row, at) in pos.iter_mut().enumerate() {
            if self.nulls.is_valid(row) {
                self.key.put(buf, at);
                buf[*at] = u8::from(self.array.value(row));
                *at += 1;
            }
        }
    }
}

/// STRING and BYTES columns from offset-based arrays (32- or 64-bit offsets).
struct ByteStrings<'a, T: ByteArrayType> {
    key: Key,
    array: &'a GenericByteArray<T>,
    nulls: Nulls<'a>,
    mode: Mode,
}

fn byte_strings<'a, T: ByteArrayType>(
    input: &'a ArrayRef,
    tag: u32,
    mode: Mode,
    name: &'a str,
) -> Box<dyn ColumnKernel + 'a> {
    Box::new(ByteStrings::<T> {
        key: Key::new(tag, WireType::LengthDelimited),
        array: input.as_bytes::<T>(),
        nulls: Nulls::of(input.as_ref(), name),
        mode,
    })
}

impl<T: ByteArrayType> ColumnKernel for ByteStrings<'_, T> {
    fn check(&self, _: &mut [usize]) -> Result<(), ValueError> {
        self.nulls.check_required(self.mode)
    }

    fn measure(&self, lens: &mut [usize]) -> Result<(), ValueError> {
        self.nulls.check_required(self.mode)?;
        let key = self.key.len;
        for (row, (len, pair)) in lens.iter_mut().zip(self.array.value_offsets().windows(2)).enumerate() {
            if self.nulls.is_valid(row) {
                let n = (pair[1] - pair[0]).as_usize();
                *len += key + varint_len(n as u64) + n;
            }
        }
        Ok(())
    }

    fn write(&self, buf: &mut [u8], pos: &mut [usize]) {
        let data = self.array.value_data();
        for (row, (at, pair)) in pos.iter_mut().zip(self.array.value_offsets().windows(2)).enumerate() {
            if self.nulls.is_valid(row) {
                let (start, end) = (pair[0].as_usize(), pair[1].as_usize());
                self.key.put(buf, at);
                put_varint(buf, at, (end - start) as u64);
                put_bytes(buf, at, &data[start..end]);
            }
        }
    }
}

/// STRING and BYTES columns from view arrays.
struct ByteViews<'a, T: ByteViewType> {
    key: Key,
    array: &'a GenericByteViewArray<T>,
    nulls: Nulls<'a>,
    mode: Mode,
}

fn byte_views<'a, T: ByteViewType>(
    input: &'a ArrayRef,
    tag: u32,
    mode: Mode,
    name: &'a str,
) -> Box<dyn ColumnKernel + 'a> {
    Box::new(ByteViews::<T> {
        key: Key::new(tag, WireType::LengthDelimited),
        array: input.as_byte_view::<T>(),
        nulls: Nulls::of(input.as_ref(), name),
        mode,
    })
}

impl<T: ByteViewType> ColumnKernel for ByteViews<'_, T> {
    fn check(&self, _: &mut [usize]) -> Result<(), ValueError> {
        self.nulls.check_required(self.mode)
    }

    fn measure(&self, lens: &mut [usize]) -> Result<(), ValueError> {
        self.nulls.check_required(self.mode)?;
        let key = self.key.len;
        for (row, (len, view)) in lens.iter_mut().zip(self.array.views().iter()).enumerate() {
            if self.nulls.is_valid(row) {
                // The low 32 bits of a view are the value's length.
                let n = *view as u32 as usize;
                *len += key + varint_len(n as u64) + n;
            }
        }
        Ok(())
    }

    fn write(&self, buf: &mut [u8], pos: &mut [usize]) {
        for (row, at) in pos.iter_mut().enumerate() {
            if self.nulls.is_valid(row) {
                let value: &[u8] = self.array.value(row).as_ref();
                self.key.put(buf, at);
                put_varint(buf, at, value.len() as u64);
                put_bytes(buf, at, value);
            }
        }
    }
}

/// NUMERIC columns from Decimal128 at scale 0..=9, packed: the value at scale 9 as minimal
/// little-endian two's complement bytes.
struct Numerics<'a> {
    key: Key,
    array: &'a PrimitiveArray<Decimal128Type>,
    nulls: Nulls<'a>,
    mode: Mode,
    /// 10^(9 - input scale).
    multiplier: i128,
    /// The largest input whose value at scale 9 is within NUMERIC's range.
    max_input: i128,
}

/// Bytes of the minimal two's complement form of `v` (at least one).
#[inline]
fn packed_len_i64(v: i64) -> usize {
    let redundant = if v < 0 { v.leading_ones() } else { v.leading_zeros() } as usize;
    (64 - redundant + 1).div_ceil(8).clamp(1, 8)
}

/// Bytes of the minimal two's complement form of `v` (at least one).
#[inline]
fn packed_len(v: i128) -> usize {
    // Redundant sign bits beyond the one that must stay.
    let redundant = if v < 0 { v.leading_ones() } else { v.leading_zeros() } as usize;
    let bits = 128 - redundant + 1;
    bits.div_ceil(8).clamp(1, 16)
}

impl Numerics<'_> {
    /// The value at scale 9 and its packed length; 64-bit arithmetic when the value allows,
    /// as it does for nearly every decimal met in practice. `v` must be within `max_input`.
    #[inline]
    fn scaled(&self, v: i128) -> (i128, usize) {
        let small = v as i64;
        if i128::from(small) == v
            && let Some(scaled) = small.checked_mul(self.multiplier as i64)
        {
            return (i128::from(scaled), packed_len_i64(scaled));
        }
        let scaled = v * self.multiplier;
        (scaled, packed_len(scaled))
    }
}

impl ColumnKernel for Numerics<'_> {
    fn check(&self, _: &mut [usize]) -> Result<(), ValueError> {
        self.nulls.check_required(self.mode)?;
        let range = -self.max_input..=self.max_input;
        let bad = self
            .array
            .values()
            .iter()
            .enumerate()
            .find(|(row, v)| !range.contains(v) && self.nulls.is_valid(*row));
        match bad {
            Some((row, _)) => Err(invalid(
                self.array,
                row,
                self.nulls.name,
                <i128 as values::Unscaled>::OUT_OF_RANGE,
            )),
            None => Ok(()),
        }
    }

    fn measure(&self, lens: &mut [usize]) -> Result<(), ValueError> {
        self.check(lens)?;
        let key = self.key.len;
        for (row, (len, v)) in lens.iter_mut().zip(self.array.values().iter()).enumerate() {
            if self.nulls.is_valid(row) {
                *len += key + 1 + self.scaled(*v).1;
            }
        }
        Ok(())
    }

    fn write(&self, buf: &mut [u8], pos: &mut [usize]) {
        for (row, (at, v)) in pos.iter_mut().zip(self.array.values().iter()).enumerate() {
            if !self.nulls.is_valid(row) {
                continue;
            }
            // Measured before: within `max_input`, so the product is within NUMERIC's range.
            let (scaled, n) = self.scaled(*v);
            self.key.put(buf, at);
            buf[*at] = n as u8;
            *at += 1;
            put_bytes(buf, at, &scaled.to_le_bytes()[..n]);
        }
    }
}

/// Any other column: its canonical array written row by row into a side buffer, while
/// measuring; then copied into each row's slot.
pub(crate) struct Prewritten {
    bytes: Vec<u8>,
    /// End of each row's field in `bytes`.
    ends: Vec<usize>,
}

impl Prewritten {
    /// Writes every row of `array` (canonical for `column`) with [`FieldWriter`].
    pub(crate) fn new(
        column: &TableFieldSchema,
        tag: u32,
        array: &ArrayRef,
        options: WriteOptions,
    ) -> Result<Result<Self, ValueError>, String> {
        let writer = FieldWriter::new(column, tag, array, options)?;
        let rows = array.len();
        let mut bytes = Vec::with_capacity(rows * 8);
        let mut ends = Vec::with_capacity(rows);
        for row in 0..rows {
            if let Err(error) = writer.write(row, &mut bytes) {
                return Ok(Err(error));
            }
            ends.push(bytes.len());
        }
        Ok(Ok(Prewritten { bytes, ends }))
    }
}

impl ColumnKernel for Prewritten {
    fn measure(&self, lens: &mut [usize]) -> Result<(), ValueError> {
        let mut start = 0;
        for (len, end) in lens.iter_mut().zip(&self.ends) {
            *len += end - start;
            start = *end;
        }
        Ok(())
    }

    fn write(&self, buf: &mut [u8], pos: &mut [usize]) {
        let mut start = 0;
        for (at, end) in pos.iter_mut().zip(&self.ends) {
            let n = end - start;
            buf[*at..*at + n].copy_from_slice(&self.bytes[start..*end]);
            *at += n;
            start = *end;
        }
    }
}

/// The error for the value at `row` of `array`, in column `name`.
fn invalid(array: &dyn Array, row: usize, name: &str, reason: &str) -> ValueError {
    ValueError::invalid(array, row, reason).within(name, None)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BinaryViewArray, Date32Array, Decimal128Array, Float32Array, Int8Array, Int32Array, Int64Array,
        LargeStringArray, StringArray, StringViewArray, TimestampMicrosecondArray, UInt32Array,
    };

    use super::*;
    use crate::encode::ArrayNullElements;
    use crate::encode::normalize::Conversion;
    use crate::schema::field;

    const OPTIONS: WriteOptions = WriteOptions {
        encoding: WireEncoding::Packed,
        null_elements: ArrayNullElements::Error,
    };

    use crate::encode::value_error::ValueErrorKind;

    /// Rows of one column through a kernel.
    fn run(kernel: &dyn ColumnKernel, rows: usize) -> Result<Vec<Vec<u8>>, ValueError> {
        let mut lens = vec![0; rows];
        kernel.measure(&mut lens)?;
        let mut pos = Vec::new();
        let mut total = 0;
        for len in &lens {
            pos.push(total);
            total += len;
        }
        let starts = pos.clone();
        let mut buf = vec![0u8; total];
        kernel.write(&mut buf, &mut pos);
        Ok(starts.iter().zip(&lens).map(|(s, l)| buf[*s..s + l].to_vec()).collect())
    }

    /// The direct kernel and the canonical row-by-row writer produce the same rows.
    fn same_as_canonical(ty: Type, mode: Mode, input: ArrayRef) {
        let column = field("c", ty, mode);
        let kernel = plan(&column, 3, &input, OPTIONS).unwrap_or_else(|| panic!("no kernel for {}", input.data_type()));
        let canonical = Conversion::plan(input.data_type(), &column, "c")
            .map_err(|e| format!("{e:?}"))
            .and_then(|c| c.apply(&input).map_err(|e| format!("{e:?}")))
            .expect("canonical");
        let slow = Prewritten::new(&column, 3, &canonical, OPTIONS)
            .expect("writer")
            .expect("rows");
        let fast_rows = run(kernel.as_ref(), input.len()).expect("fast");
        let slow_rows = run(&slow, input.len()).expect("slow");
        assert_eq!(fast_rows, slow_rows, "{}", input.data_type());
    }

    #[test]
    fn direct_kernels_write_what_the_canonical_writer_writes() {
        let n = Mode::Nullable;
        same_as_canonical(
            Type::Int64,
            n,
            Arc::new(Int64Array::from(vec![Some(i64::MIN), None, Some(0), Some(300)])),
        );
        same_as_canonical(
            Type::Int64,
            n,
            Arc::new(Int32Array::from(vec![Some(-1), None, Some(i32::MAX)])),
        );
        same_as_canonical(Type::Int64, n, Arc::new(Int8Array::from(vec![Some(-128), Some(5)])));
        same_as_canonical(Type::Int64, n, Arc::new(UInt32Array::from(vec![Some(u32::MAX), None])));
        same_as_canonical(
            Type::Double,
            n,
            Arc::new(Float32Array::from(vec![Some(0.1), None, Some(f32::NAN)])),
        );
        same_as_canonical(
            Type::Bool,
            n,
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        );
        same_as_canonical(
            Type::String,
            n,
            Arc::new(StringArray::from(vec![Some("héllo"), None, Some("")])),
        );
        same_as_canonical(
            Type::String,
            n,
            Arc::new(LargeStringArray::from(vec![Some("x".repeat(300)), None])),
        );
        same_as_canonical(
            Type::String,
            n,
            Arc::new(StringViewArray::from(vec![
                Some("a view longer than twelve bytes"),
                None,
                Some("short"),
            ])),
        );
        same_as_canonical(
            Type::Bytes,
            n,
            Arc::new(BinaryViewArray::from(vec![Some(&[0u8, 255][..]), None, Some(&b""[..])])),
        );
        same_as_canonical(
            Type::Date,
            n,
            Arc::new(Date32Array::from(vec![Some(values::DATE_MIN_DAYS), None, Some(-1)])),
        );
        same_as_canonical(
            Type::Timestamp,
            n,
            Arc::new(TimestampMicrosecondArray::from(vec![Some(values::MICROS_MAX), None]).with_timezone("UTC")),
        );
        for scale in [0, 2, 9] {
            let decimals = Decimal128Array::from(vec![Some(0), Some(-1), None, Some(1_234_567), Some(-10i128.pow(20))])
                .with_precision_and_scale(38, scale)
                .expect("decimal");
            same_as_canonical(Type::Numeric, n, Arc::new(decimals));
        }
    }

    #[test]
    fn direct_kernels_refuse_what_the_column_cannot_hold() {
        let required = field("c", Type::Int64, Mode::Required);
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(2), None, None]));
        let kernel = plan(&required, 1, &ids, OPTIONS).expect("kernel");
        let failure = run(kernel.as_ref(), 4).expect_err("NULL in REQUIRED");
        assert_eq!(failure.row, 2);
        assert_eq!(failure.path, "c");
        assert!(matches!(failure.kind, ValueErrorKind::NullInRequired), "{failure:?}");

        let date = field("d", Type::Date, Mode::Nullable);
        let days: ArrayRef = Arc::new(Date32Array::from(vec![Some(0), Some(values::DATE_MAX_DAYS + 1)]));
        let failure = run(plan(&date, 1, &days, OPTIONS).expect("kernel").as_ref(), 2).expect_err("range");
        assert_eq!(failure.row, 1);
        assert_eq!(failure.path, "d");

        let numeric = field("n", Type::Numeric, Mode::Nullable);
        let big: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(1), Some(10i128.pow(29))])
                .with_precision_and_scale(38, 0)
                .expect("decimal"),
        );
        let failure = run(plan(&numeric, 1, &big, OPTIONS).expect("kernel").as_ref(), 2).expect_err("range");
        assert_eq!(failure.row, 1);
        assert!(failure.reason().contains("NUMERIC's range"), "{failure:?}");
    }

    #[test]
    fn packed_lengths_are_minimal_twos_complement() {
        for v in [
            0i128,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            255,
            32767,
            32768,
            i64::MAX as i128,
            i64::MIN as i128,
            i64::MAX as i128 + 1,
            values::NUMERIC_MAX_UNSCALED,
            -values::NUMERIC_MAX_UNSCALED,
        ] {
            assert_eq!(packed_len(v), values::pack_numeric(v).len(), "{v}");
            if let Ok(small) = i64::try_from(v) {
                assert_eq!(packed_len_i64(small), packed_len(v), "{v}");
            }
        }
    }

    #[test]
    fn short_and_long_copies_are_exact() {
        for n in 0..80usize {
            let src: Vec<u8> = (0..n as u8).map(|b| b.wrapping_mul(7) ^ 0x5a).collect();
            let mut buf = vec![0xEEu8; n + 4];
            let mut at = 2;
            put_bytes(&mut buf, &mut at, &src);
            assert_eq!(at, 2 + n);
            assert_eq!(&buf[2..2 + n], src.as_slice(), "{n}");
            assert_eq!(
                (buf[0], buf[1], buf[n + 2], buf[n + 3]),
                (0xEE, 0xEE, 0xEE, 0xEE),
                "{n}"
            );
        }
    }

    #[test]
    fn varints_match_prost() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut ours = [0u8; 10];
            let mut at = 0;
            put_varint(&mut ours, &mut at, v);
            let mut theirs = Vec::new();
            prost::encoding::encode_varint(v, &mut theirs);
            assert_eq!(&ours[..at], theirs.as_slice());
            assert_eq!(varint_len(v), at);
        }
    }
}
