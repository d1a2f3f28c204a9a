-- code: NAME_MISMATCH
-- name: 姓名与户籍登记不一致
-- severity: 中
-- items: all
-- datasets: hukou
-- explanation: 平台登记的申请人姓名与公安户籍数据中同一身份证号码的姓名不一致（已去掉首尾空格）。
--   可能是录入错误、改名未更新，也可能是用他人身份证号码申领。经办部门应核对身份证和户口簿，
--   属录入错误的更正人员信息，属冒用的按规定处理。
WITH differing AS (
  -- people with a hukou record under another name (usually few)
  SELECT DISTINCT p.person_id, p.id_hash, trim(p.name) AS name
  FROM persons p
  JOIN hukou h ON h.id_hash = p.id_hash
  WHERE trim(h.name) <> trim(p.name)
), mismatched AS (
  -- ... and no record under their own name
  SELECT d.person_id, d.name, list(DISTINCT trim(h.name) ORDER BY trim(h.name)) AS hukou_names
  FROM differing d
  JOIN hukou h ON h.id_hash = d.id_hash
  GROUP BY d.person_id, d.name
  HAVING NOT bool_or(trim(h.name) = d.name)
)
SELECT a.application_id,
       '户籍登记姓名 ' || array_to_string(m.hukou_names, '、') || '，平台登记姓名 ' || m.name AS evidence,
       array_to_string(m.hukou_names, '、') || '|' || m.name AS fact_key
FROM applications a
JOIN mismatched m ON m.person_id = a.person_id
