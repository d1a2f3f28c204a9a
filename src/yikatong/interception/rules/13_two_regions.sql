-- code: TWO_REGIONS
-- name: 同一人在两地申领
-- severity: 高
-- items: basis:人,户
-- datasets: none
-- explanation: 同一人在两个不同的村（社区）都有所属期重叠的有效申请（按人或按户计发的项目），两笔申请都被标记。
--   一个人只能在一个地方享受按人、按户计发的补贴，两地申领可能是户籍迁移后原籍未停发或重复登记。
--   经办部门应与另一地核实申请人实际居住地和户籍地，只保留一地的申请。
WITH claims AS (
  SELECT application_id, number, person_id, region_code, period, period_start, period_end
  FROM applications
  WHERE basis IN ('人', '户')
), in_two_places AS (
  -- people whose claims name more than one village: the only ones worth pairing up
  SELECT person_id FROM claims GROUP BY person_id HAVING min(region_code) <> max(region_code)
), candidates AS (
  SELECT c.* FROM claims c JOIN in_two_places USING (person_id)
)
SELECT here.application_id,
       '同一人在另一村（社区）' || there.region_code || ' 也有所属期重叠的申请 ' || there.number
         || '（所属期 ' || there.period || '），本申请在 ' || here.region_code || '，所属期 ' || here.period AS evidence,
       'application:' || there.application_id AS fact_key
FROM candidates here
JOIN candidates there ON there.person_id = here.person_id
WHERE there.region_code <> here.region_code
  AND there.period_start <= here.period_end
  AND there.period_end >= here.period_start
