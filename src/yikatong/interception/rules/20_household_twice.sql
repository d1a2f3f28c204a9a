-- code: HOUSEHOLD_TWICE
-- name: 同一户重复申领按户补贴
-- severity: 高
-- items: basis:户
-- datasets: none
-- explanation: 按户计发的补贴项目，同一户的另一名成员已有所属期重叠的有效申请（办理中或已通过），
--   两笔中后提交的一笔被标记。按户补贴每户每期只能领取一份。经办部门应核实两人是否同属一户（分户是否真实），
--   确属同一户的否决后一笔。
SELECT later.application_id,
       '同户成员 ' || CASE WHEN length(op.name) <= 1 THEN op.name
                            WHEN length(op.name) = 2 THEN left(op.name, 1) || '*'
                            ELSE left(op.name, 1) || repeat('*', length(op.name) - 2) || right(op.name, 1) END
         || '（' || op.id_masked || '）已有所属期重叠的同一项目申请 ' || earlier.number || '（所属期 ' || earlier.period
         || '），本申请所属期 ' || later.period AS evidence,
       'application:' || earlier.application_id AS fact_key
FROM applications later
JOIN applications earlier ON earlier.household_id = later.household_id AND earlier.item_code = later.item_code
JOIN persons op ON op.person_id = earlier.person_id
WHERE later.basis = '户'
  AND earlier.application_id < later.application_id
  AND earlier.person_id <> later.person_id
  AND earlier.period_start <= later.period_end
  AND earlier.period_end >= later.period_start
