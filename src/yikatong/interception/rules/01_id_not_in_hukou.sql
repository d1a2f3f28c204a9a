-- code: ID_NOT_IN_HUKOU
-- name: 户籍中查无此人或户籍已注销
-- severity: 高
-- items: all
-- datasets: hukou
-- explanation: 申请人的身份证号码在公安户籍数据中查不到，或户籍已注销（注销日期在所属期结束之前，或未登记注销日期）。
--   可能是身份证号码录入错误、冒用他人身份或虚构人员。只比对户籍数据已覆盖的县（区）：某县的户籍数据尚未报送时，
--   该县的申请不受本规则影响。经办部门应核对申请人身份证原件和户口簿，向派出所核实户籍状态。
WITH covered_counties AS (
  -- the counties the delivered hukou data covers (a partial delivery must not flag the rest of the city)
  SELECT DISTINCT left(region_code, 6) AS county FROM hukou
), hukou_by_person AS (
  SELECT id_hash,
         bool_or(status <> '注销') AS has_live_record,
         max(moved_out_on) FILTER (WHERE status = '注销') AS cancelled_on
  FROM hukou
  GROUP BY id_hash
)
SELECT a.application_id,
       CASE WHEN h.id_hash IS NULL
            THEN '户籍数据中查无此身份证号码（' || p.id_masked || '）'
            ELSE '户籍已注销' || COALESCE('（注销日期 ' || strftime(h.cancelled_on, '%Y-%m-%d') || '）', '')
       END || '，所属期 ' || a.period AS evidence,
       CASE WHEN h.id_hash IS NULL THEN 'none' ELSE 'cancelled:' || COALESCE(CAST(h.cancelled_on AS VARCHAR), '') END
         AS fact_key
FROM applications a
JOIN covered_counties c ON c.county = left(a.region_code, 6)
JOIN persons p ON p.person_id = a.person_id
LEFT JOIN hukou_by_person h ON h.id_hash = p.id_hash
WHERE h.id_hash IS NULL
   OR (NOT h.has_live_record AND (h.cancelled_on IS NULL OR h.cancelled_on <= a.period_end))
