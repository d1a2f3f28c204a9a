-- code: BUSINESS_MEANS_TESTED
-- name: 开办企业人员享受困难救助
-- severity: 中
-- items: means_tested
-- datasets: businesses
-- explanation: 申请人是存续企业（所属期结束前成立）的法定代表人、股东或负责人，却申领需要家庭经济状况核查的
--   困难救助类补贴。经营企业的收入和出资可能使家庭不符合救助条件。经办部门应核实企业经营和分红情况、
--   申请人是否被冒名登记，不符合条件的停发。
SELECT a.application_id,
       b.company || ' ' || b.role || '（' || b.status || '，成立日期 ' || strftime(b.registered_on, '%Y-%m-%d')
         || COALESCE('，认缴出资 ' || format('{:,.2f}', b.capital_fen / 100) || ' 元', '') || '）' AS evidence,
       b.company || ':' || b.role AS fact_key
FROM applications a
JOIN persons p ON p.person_id = a.person_id
JOIN businesses b ON b.id_hash = p.id_hash
WHERE b.status = '存续'
  AND b.registered_on <= a.period_end
