//! The exported tables as Parquet, in types every engine reads (DuckDB, Polars,
//! DataFusion, Spark, Trino): no unsigned integers (each becomes Int64), and the
//! modification time twice, as `mtime` in microseconds (Spark rejects nanosecond
//! Parquet timestamps) and as `mtime_ns`, exact, in Int64. Digests stay hex text, as
//! in the other formats. zstd-compressed, with column statistics.

use crate::error::{Error, Result};
use arrow_array::types::{UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{
    ArrayRef, ArrowPrimitiveType, Int64Array, PrimitiveArray, RecordBatch,
    TimestampMicrosecondArray, TimestampNanosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use std::io::Write;
use std::sync::Arc;

/// `batch` with the column types of the Parquet export.
pub fn convert(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let any = column.as_any();
        let int64 = |f: &Field| Field::new(f.name(), DataType::Int64, f.is_nullable());
        match field.data_type() {
            // Sizes, offsets and device numbers: far below 2^63 (see `widen`).
            DataType::UInt16 => {
                columns.push(widen::<UInt16Type>(column, field)?);
                fields.push(int64(field));
            }
            DataType::UInt32 => {
                columns.push(widen::<UInt32Type>(column, field)?);
                fields.push(int64(field));
            }
            DataType::UInt64 => {
                columns.push(widen::<UInt64Type>(column, field)?);
                fields.push(int64(field));
            }
            DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
                let a = any
                    .downcast_ref::<TimestampNanosecondArray>()
                    .ok_or_else(|| mistyped(field))?;
                let micros: TimestampMicrosecondArray =
                    a.iter().map(|v| v.map(|ns| ns.div_euclid(1000))).collect();
                let unit = DataType::Timestamp(TimeUnit::Microsecond, tz.clone());
                columns.push(Arc::new(micros.with_timezone_opt(tz.clone())));
                fields.push(Field::new(field.name(), unit, field.is_nullable()));
                columns.push(Arc::new(a.iter().collect::<Int64Array>()));
                let exact = format!("{}_ns", field.name());
                fields.push(Field::new(exact, DataType::Int64, field.is_nullable()));
            }
            _ => {
                columns.push(column.clone());
                fields.push(field.as_ref().clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::Invalid(format!("parquet export: {e}")))
}

/// An unsigned column as Int64. A value beyond `i64::MAX` (only a crafted archive has
/// one: sizes, offsets and device numbers are far below) is an error naming the column
/// and the row, never a null.
fn widen<T: ArrowPrimitiveType>(column: &ArrayRef, field: &Field) -> Result<ArrayRef>
where
    T::Native: TryInto<i64> + std::fmt::Display,
{
    let a = (column.as_any().downcast_ref::<PrimitiveArray<T>>()).ok_or_else(|| mistyped(field))?;
    let values = a.iter().enumerate().map(|(row, v)| {
        v.map(|v| {
            let shown = v.to_string();
            v.try_into().map_err(|_| {
                Error::Invalid(format!(
                    "parquet export: column {} holds {shown} in row {row}, beyond Parquet's Int64",
                    field.name()
                ))
            })
        })
        .transpose()
    });
    Ok(Arc::new(values.collect::<Result<Int64Array>>()?))
}

fn mistyped(field: &Field) -> Error {
    Error::Invalid(format!(
        "parquet export: column {} is mistyped",
        field.name()
    ))
}

/// Writes `batch` (converted with [`convert`]) to `out` as one Parquet file; `name`
/// names `out` in messages.
pub fn write(batch: &RecordBatch, out: impl Write, name: &std::path::Path) -> Result<()> {
    let batch = convert(batch)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("znippy-uring {}", env!("CARGO_PKG_VERSION")))
        .build();
    // The writer wants a `Send` sink; the file is small next to the archive, so it is
    // made in memory and then written out.
    let mut bytes = Vec::new();
    let fail = |e: parquet::errors::ParquetError| Error::Invalid(format!("parquet export: {e}"));
    let mut w = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props)).map_err(fail)?;
    w.write(&batch).map_err(fail)?;
    w.close().map_err(fail)?;
    let mut out = out;
    out.write_all(&bytes)
        .map_err(|e| Error::io(name, "write", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, UInt16Array, UInt32Array, UInt64Array};

    #[test]
    fn an_unsigned_value_beyond_int64_is_an_error_not_a_null() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "rdev",
            DataType::UInt64,
            true,
        )]));
        let values = UInt64Array::from(vec![Some(5u64), None, Some((1u64 << 63) + 5)]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap();
        let err = convert(&batch).unwrap_err().to_string();
        assert!(
            err.contains("column rdev holds 9223372036854775813 in row 2, beyond Parquet's Int64"),
            "{err}"
        );
    }

    #[test]
    fn unsigned_become_int64_and_mtime_is_kept_twice() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("size", DataType::UInt64, false),
            Field::new("mode", DataType::UInt32, false),
            Field::new("pkg_type", DataType::UInt16, true),
            Field::new(
                "mtime",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("+00:00".into())),
                false,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt64Array::from(vec![5u64])),
                Arc::new(UInt32Array::from(vec![0o100644u32])),
                Arc::new(UInt16Array::from(vec![None])),
                Arc::new(TimestampNanosecondArray::from(vec![-1_500i64]).with_timezone("+00:00")),
            ],
        )
        .unwrap();
        let out = convert(&batch).unwrap();
        let schema = out.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["size", "mode", "pkg_type", "mtime", "mtime_ns"]);
        let col = |i: usize| {
            out.column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone()
        };
        assert_eq!(col(0).value(0), 5);
        assert_eq!(col(1).value(0), 0o100644);
        assert!(col(2).is_null(0));
        assert_eq!(col(4).value(0), -1_500);
        let micros = out
            .column(3)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(micros.value(0), -2); // floor, like the nanoseconds
    }
}
