-- code: PAYROLL_MEANS_TESTED
-- name: 财政供养人员享受困难救助
-- severity: 高
-- items: means_tested
-- datasets: payroll
-- explanation: 申请人在所属期内是财政供养人员（机关事业单位在编在岗或由财政发放工资），却申领需要家庭经济状况核查的
--   困难救助类补贴。有稳定工资收入的人员一般不符合这类补贴的条件。经办部门应核实工资发放起止时间和家庭收入，
--   不符合条件的停发并追回。
SELECT a.application_id,
       '财政供养人员：' || w.employer || '，'
         || strftime(w.start_on, '%Y-%m-%d')
         || COALESCE(' 至 ' || strftime(w.end_on, '%Y-%m-%d'), ' 起在职')
         || '，所属期 ' || a.period AS evidence,
       w.employer || ':' || CAST(w.start_on AS VARCHAR) AS fact_key
FROM applications a
JOIN persons p ON p.person_id = a.person_id
JOIN payroll w ON w.id_hash = p.id_hash
WHERE w.start_on <= a.period_end
  AND (w.end_on IS NULL OR w.end_on >= a.period_start)
