//! The exported tables as Parquet, in types every engine reads (DuckDB, Polars,
//! DataFusion, Spark, Trino): no unsigned integers (each becomes Int64), and the
//! modification time twice, as `mtime` in microseconds (Spark rejects nanosecond
//! Parquet timestamps) and as `mtime_ns`, exact, in Int64. Digests stay hex text, as
//! in the other formats. zstd-compressed, with column statistics.

use crate::error::{Error, Result};
use arrow_array::{
    Array, ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray, TimestampNanosecondArray,
    UInt16Array, UInt32Array, UInt64Array,
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
        let signed = |values: Vec<Option<i64>>| -> ArrayRef { Arc::new(Int64Array::from(values)) };
        let int64 = |f: &Field| Field::new(f.name(), DataType::Int64, f.is_nullable());
        match field.data_type() {
            DataType::UInt16 => {
                let a = any
                    .downcast_ref::<UInt16Array>()
                    .ok_or_else(|| mistyped(field))?;
                columns.push(signed(a.iter().map(|v| v.map(i64::from)).collect()));
                fields.push(int64(field));
            }
            DataType::UInt32 => {
                let a = any
                    .downcast_ref::<UInt32Array>()
                    .ok_or_else(|| mistyped(field))?;
                columns.push(signed(a.iter().map(|v| v.map(i64::from)).collect()));
                fields.push(int64(field));
            }
            DataType::UInt64 => {
                // Sizes, offsets and device numbers: far below 2^63.
                let a = any
                    .downcast_ref::<UInt64Array>()
                    .ok_or_else(|| mistyped(field))?;
                let values = a.iter().map(|v| v.and_then(|v| i64::try_from(v).ok()));
                columns.push(signed(values.collect()));
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
                columns.push(signed(a.iter().collect()));
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
