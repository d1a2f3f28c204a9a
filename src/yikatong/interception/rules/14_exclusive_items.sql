-- code: EXCLUSIVE_ITEMS
-- name: 同期享受互斥项目
-- severity: 中
-- items: all
-- datasets: none
-- explanation: 同一人同一期间申领了两个互斥的补贴项目（如两种基本生活保障只能享受其一，互斥关系在补贴项目
--   目录中设置），两笔申请都被标记。经办部门应核实申请人应享受哪一项，另一项否决，已发的追回。
WITH exclusive_pairs AS (
  -- stored once per pair; both directions are needed
  SELECT item_code, other_code FROM item_exclusions
  UNION
  SELECT other_code, item_code FROM item_exclusions
)
SELECT a.application_id,
       '与互斥项目“' || other_item.name || '”同期申领：申请 ' || b.number || '（所属期 ' || b.period
         || '），本申请所属期 ' || a.period AS evidence,
       'application:' || b.application_id AS fact_key
FROM applications a
JOIN exclusive_pairs x ON x.item_code = a.item_code
JOIN applications b ON b.person_id = a.person_id AND b.item_code = x.other_code
JOIN items other_item ON other_item.item_code = b.item_code
WHERE b.period_start <= a.period_end
  AND b.period_end >= a.period_start
