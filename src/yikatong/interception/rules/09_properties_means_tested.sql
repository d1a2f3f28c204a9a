-- code: PROPERTIES_MEANS_TESTED
-- name: 名下多套房产却享受困难救助
-- severity: 中
-- items: means_tested
-- datasets: real_estate
-- explanation: 申请人名下在所属期结束前登记的房产超过限定套数，却申领需要家庭经济状况核查的困难救助类补贴。
--   拥有多套住房一般说明家庭财产超过救助条件。经办部门应核实房产是否仍归申请人所有（已出售未过户、
--   继承未分割等情况），不符合条件的停发。
-- param: max_properties = 1  允许的房产套数
WITH homes AS (
  -- one row per certificate, however many deliveries list it
  SELECT id_hash, certificate, min(registered_on) AS registered_on
  FROM real_estate
  GROUP BY id_hash, certificate
), owners AS (
  -- only people with more properties than allowed at all can exceed it in some period
  SELECT id_hash FROM homes GROUP BY id_hash HAVING count(*) > $max_properties
), held AS (
  SELECT a.application_id, a.period,
         count(*) AS properties,
         list(r.certificate || '（' || strftime(r.registered_on, '%Y-%m-%d') || ' 登记）'
              ORDER BY r.registered_on, r.certificate) AS listed,
         string_agg(r.certificate, '、' ORDER BY r.certificate) AS certificates
  FROM applications a
  JOIN persons p ON p.person_id = a.person_id
  JOIN owners o ON o.id_hash = p.id_hash
  JOIN homes r ON r.id_hash = p.id_hash
  WHERE r.registered_on <= a.period_end
  GROUP BY a.application_id, a.period
)
SELECT application_id,
       '名下房产 ' || properties || ' 套（限 ' || $max_properties || ' 套，截至所属期 ' || period || ' 末）：'
         || array_to_string(listed[1:5], '、') || CASE WHEN properties > 5 THEN ' 等' ELSE '' END AS evidence,
       certificates AS fact_key
FROM held
WHERE properties > $max_properties
