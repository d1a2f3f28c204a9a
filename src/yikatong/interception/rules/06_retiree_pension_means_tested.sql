-- code: RETIREE_PENSION_MEANS_TESTED
-- name: 较高养老金人员享受困难救助
-- severity: 低
-- items: means_tested
-- datasets: retirees
-- explanation: 申请人在所属期结束前已退休，每月基本养老金高于限额，却申领需要家庭经济状况核查的困难救助类补贴。
--   养老金是稳定收入，可能使家庭收入超过救助标准。经办部门应把养老金计入家庭收入重新核算，
--   超过标准的停发。
-- param: pension_limit_fen = 200000  每月养老金限额（分），默认2000元
SELECT a.application_id,
       '月养老金 ' || format('{:,.2f}', r.pension_fen / 100) || ' 元（限额 '
         || format('{:,.2f}', $pension_limit_fen / 100) || ' 元），'
         || strftime(r.retired_on, '%Y-%m-%d') || ' 起领取，所属期 ' || a.period AS evidence,
       CAST(r.retired_on AS VARCHAR) AS fact_key
FROM applications a
JOIN persons p ON p.person_id = a.person_id
JOIN retirees r ON r.id_hash = p.id_hash
WHERE r.pension_fen > $pension_limit_fen
  AND r.retired_on <= a.period_end
