-- code: HUKOU_MOVED_OUT
-- name: 户籍已迁出
-- severity: 中
-- items: all
-- datasets: hukou
-- explanation: 公安户籍数据显示申请人的户籍已经迁出（迁出日期在所属期结束之前，或未登记迁出日期）。
--   户籍迁出后一般不再享受原户籍地的补贴，或应转到迁入地申请。经办部门应核实申请人是否仍在本地居住、
--   迁入地是否也在发放同类补贴，确认后停发或转移。
SELECT a.application_id,
       '户籍已迁出' || COALESCE('（迁出日期 ' || strftime(h.moved_out_on, '%Y-%m-%d') || '）', '（未登记迁出日期）')
         || '，原户籍地 ' || h.region_code || '，所属期 ' || a.period AS evidence,
       h.region_code || ':' || COALESCE(CAST(h.moved_out_on AS VARCHAR), '') AS fact_key
FROM applications a
JOIN persons p ON p.person_id = a.person_id
JOIN hukou h ON h.id_hash = p.id_hash
WHERE h.status = '迁出'
  AND (h.moved_out_on IS NULL OR h.moved_out_on <= a.period_end)
