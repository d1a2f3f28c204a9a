-- code: OVER_STANDARD
-- name: 申请金额超过标准
-- severity: 中
-- items: all
-- datasets: none
-- explanation: 申请金额高于所属期适用的补贴标准乘以数量（四舍五入到分），或按人、按户计发的项目数量不是1。
--   可能是标准录入错误、数量虚报或金额被改动。涉及金额为超出标准的部分（数量错误时为整笔金额）。
--   标准调整（提标或降标）只适用于生效日期以后的所属期。经办部门应按所属期标准和核定数量重新计算，多报的部分核减。
WITH expected AS (
  SELECT a.application_id, a.basis, a.quantity_centi, a.amount_fen, a.period_standard_fen AS standard_fen,
         (a.period_standard_fen * a.quantity_centi + 50) // 100 AS due_fen
  FROM applications a
), checked AS (
  SELECT *, basis IN ('人', '户') AND quantity_centi <> 100 AS wrong_quantity
  FROM expected
)
SELECT application_id,
       CASE WHEN wrong_quantity
            THEN '按' || basis || '计发的项目数量应为 1，申请数量为 ' || format('{:.2f}', quantity_centi / 100)
                   || '，申请金额 ' || format('{:,.2f}', amount_fen / 100) || ' 元'
            ELSE '申请金额 ' || format('{:,.2f}', amount_fen / 100) || ' 元，标准 '
                   || format('{:,.2f}', standard_fen / 100) || ' 元 × 数量 ' || format('{:.2f}', quantity_centi / 100)
                   || ' = ' || format('{:,.2f}', due_fen / 100) || ' 元，超出 '
                   || format('{:,.2f}', (amount_fen - due_fen) / 100) || ' 元'
       END AS evidence,
       CASE WHEN wrong_quantity THEN amount_fen ELSE amount_fen - due_fen END AS amount_fen,
       -- the claim's own figures are the fact: a correction changes them, rewording does not
       CASE WHEN wrong_quantity THEN 'quantity:' ELSE 'amount:' END || quantity_centi || ':' || amount_fen AS fact_key
FROM checked
WHERE wrong_quantity OR amount_fen > due_fen
