-- code: VEHICLE_MEANS_TESTED
-- name: 名下有较高价值车辆却享受困难救助
-- severity: 中
-- items: means_tested
-- datasets: vehicles
-- explanation: 申请人名下登记有价值超过限额的机动车（所属期结束前登记），却申领需要家庭经济状况核查的困难救助类补贴。
--   拥有较高价值车辆一般说明家庭财产超过救助条件。经办部门应核实车辆是否仍归申请人所有、是否为生产经营
--   必需的车辆，不符合条件的停发。
-- param: vehicle_value_limit_fen = 5000000  车辆价值限额（分），默认5万元
SELECT a.application_id,
       '名下车辆 ' || v.plate || '（' || v.vehicle_type || '），价值 ' || format('{:,.2f}', v.value_fen / 100)
         || ' 元（限额 ' || format('{:,.2f}', $vehicle_value_limit_fen / 100) || ' 元），登记日期 '
         || strftime(v.registered_on, '%Y-%m-%d') AS evidence,
       v.plate AS fact_key
FROM applications a
JOIN persons p ON p.person_id = a.person_id
JOIN vehicles v ON v.id_hash = p.id_hash
WHERE v.value_fen > $vehicle_value_limit_fen
  AND v.registered_on <= a.period_end
